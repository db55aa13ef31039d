;; forbidden-import asks the host for a function Sluice does not provide (a
;; way out of the sandbox): the load must fail and name the import.
(module
  (import "env" "system" (func $system (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "sluice_free") (param i32))
  (func (export "sluice_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_scan") (param i32 i32) (result i32)
    (call $system (local.get 0) (local.get 1)))
  (func (export "sluice_output") (result i64) (i64.const 0)))
