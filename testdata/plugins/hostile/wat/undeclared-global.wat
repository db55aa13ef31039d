;; undeclared-global is not a valid module: its scan loop writes global 1,
;; and it declares only global 0. Built with `wat2wasm --no-check`, since
;; wat2wasm refuses it otherwise. A host that rewrote it before validating
;; would add globals of its own, after which global 1 exists: if that were
;; the deadline's budget, the loop would refill it on every iteration and the
;; deadline would never fire. The host must refuse the module as invalid.
;; wat2wasm-flags: --no-check
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{\"findings\":[]}")
  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (local.get $ptr))
  (func (export "sluice_free") (param i32))
  (func (export "sluice_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_scan") (param i32 i32) (result i32)
    (local $i i32)
    (local.set $i (i32.const 0x7fffffff))
    (loop $spin
      (global.set 1 (i32.const 4096))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $spin (local.get $i)))
    (i32.const 0))
  (func (export "sluice_output") (result i64) (i64.const 0x100000000f)))
