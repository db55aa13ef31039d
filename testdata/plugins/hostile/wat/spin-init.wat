;; spin-init is a complete plugin whose _initialize never returns: the load
;; must fail after the set-up deadline instead of hanging.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $forever (br $forever)))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "sluice_free") (param i32))
  (func (export "sluice_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_scan") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_output") (result i64) (i64.const 0)))
