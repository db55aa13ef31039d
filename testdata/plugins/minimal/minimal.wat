;; minimal is the smallest useful ABI v1 plugin: it finds nothing, in no time.
;; Benchmarks call it to measure what the host itself costs per scan.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{\"findings\":[]}")
  (data (i32.const 32) "{\"types\":[]}")
  ;; The output: the manifest after configure, the empty result after a scan.
  (global $out (mut i64) (i64.const 0))
  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
          (then (return (i32.const 0))))
        (br $grow)))
    (local.get $ptr))
  (func (export "sluice_free") (param i32))
  (func (export "sluice_configure") (param i32 i32) (result i32)
    (global.set $out (i64.const 0x200000000c))
    (i32.const 0))
  (func (export "sluice_scan") (param i32 i32) (result i32)
    (global.set $out (i64.const 0x100000000f))
    (i32.const 0))
  (func (export "sluice_output") (result i64) (global.get $out)))
