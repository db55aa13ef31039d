;; start-spin is a complete plugin whose start function never returns. A start
;; function runs when the module is instantiated, before the host can call
;; anything: the host must bound it like any other guest code, at load and at
;; every fresh instance.
(module
  (memory (export "memory") 1)
  (func $spin (loop $forever (br $forever)))
  (start $spin)
  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "sluice_free") (param i32))
  (func (export "sluice_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_scan") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_output") (result i64) (i64.const 0x100000000f))
  (data (i32.const 16) "{\"findings\":[]}"))
