;; abi-v2 is a well-formed plugin that declares ABI version 2, which this host
;; does not implement: the load must fail and say so.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"findings\":[]}")
  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 2))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "sluice_free") (param i32))
  (func (export "sluice_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_scan") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_output") (result i64) (i64.const 0x100000000f)))
