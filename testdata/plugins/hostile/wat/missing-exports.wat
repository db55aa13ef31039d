;; missing-exports lacks sluice_scan and sluice_output and exports sluice_free
;; with the wrong signature: the load must fail and name every problem.
(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "sluice_free") (param i64))
  (func (export "sluice_configure") (param i32 i32) (result i32) (i32.const 0)))
