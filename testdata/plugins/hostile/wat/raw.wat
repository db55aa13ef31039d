;; raw is a hand-written ABI v1 plugin that breaks the contract in ways a Go
;; guest cannot, chosen by the first text of a scan:
;;
;;   "!oob"   sluice_output points past the end of linear memory
;;   "!big"   sluice_output claims a result larger than the host's 16 MiB limit
;;   "!trap"  the scan executes unreachable
;;   "!grow"  the scan grows memory until the limit refuses, then traps (a
;;            runtime aborting when out of memory)
;;   "!spin"  the scan never returns (a one-instruction loop)
;;   "!json"  the result is not JSON
;;   "!fill"  2,000 memory.fill calls of 16 MiB each: a loop of few, costly
;;            iterations
;;   "!recurse" a function that calls itself twice per level, 40 levels
;;            deep: 2^40 calls and not one loop
;;   "!mark"  sets a global and a word of memory (at address 8)
;;   "!close" closes its standard output (WASI fd_close of fd 1)
;;   "!write" one RESIDUE finding if writing to its standard output fails:
;;            an earlier call closed it
;;   "!probe" one RESIDUE finding if the global or the word is set, or if any
;;            of the 1,024 bytes after its input in the host's input buffer
;;            is not zero: state or text of an earlier call
;;   other    a valid empty result
(module
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $out_ptr (mut i32) (i32.const 0))
  (global $out_len (mut i32) (i32.const 0))
  (global $mark (mut i32) (i32.const 0))
  (data (i32.const 16) "{\"findings\":[]}")
  (data (i32.const 48) "not json")
  (data (i32.const 160) "{\"types\":[\"RESIDUE\"]}")
  (data (i32.const 64) "{\"findings\":[{\"type\":\"RESIDUE\",\"message\":0,\"start\":0,\"end\":1,\"score\":1}]}")

  (func (export "_initialize"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))

  ;; A bump allocator that never frees: the host allocates one input buffer
  ;; per instance and replaces it only to grow it.
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

  ;; The manifest declares the one type raw reports.
  (func (export "sluice_configure") (param i32 i32) (result i32)
    (global.set $out_ptr (i32.const 160))
    (global.set $out_len (i32.const 21))
    (i32.const 0))

  ;; recurse calls itself twice per level: no loop anywhere, and time that
  ;; doubles with each level of depth.
  (func $recurse (param $depth i32)
    (if (local.get $depth)
      (then
        (call $recurse (i32.sub (local.get $depth) (i32.const 1)))
        (call $recurse (i32.sub (local.get $depth) (i32.const 1))))))

  (func (export "sluice_scan") (param $ptr i32) (param $len i32) (result i32)
    (local $mode i32)
    (local $i i32)
    ;; mode is the second byte of the first text when its first byte is "!".
    (if (i32.ge_u (local.get $len) (i32.const 10))
      (then
        (if (i32.and
              (i32.ge_u (i32.load (i32.add (local.get $ptr) (i32.const 4))) (i32.const 2))
              (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 8))) (i32.const 33)))
          (then (local.set $mode (i32.load8_u (i32.add (local.get $ptr) (i32.const 9))))))))
    (global.set $out_ptr (i32.const 16))
    (global.set $out_len (i32.const 15))
    (block $done
      (if (i32.eq (local.get $mode) (i32.const 111)) ;; o
        (then
          (global.set $out_ptr (i32.const 0xffff0000))
          (global.set $out_len (i32.const 16))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 98)) ;; b
        (then
          (global.set $out_ptr (i32.const 0))
          (global.set $out_len (i32.const 0x01100000))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 116)) ;; t
        (then unreachable))
      (if (i32.eq (local.get $mode) (i32.const 103)) ;; g
        (then
          (loop $more
            (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
          unreachable))
      (if (i32.eq (local.get $mode) (i32.const 115)) ;; s
        (then (loop $forever (br $forever))))
      (if (i32.eq (local.get $mode) (i32.const 102)) ;; f
        (then
          ;; 257 pages hold 16 MiB above the first page, which holds the
          ;; results and the input buffer.
          (if (i32.lt_u (memory.size) (i32.const 257))
            (then (drop (memory.grow (i32.sub (i32.const 257) (memory.size))))))
          (local.set $i (i32.const 2000))
          (loop $fill
            (memory.fill (i32.const 0x10000) (local.get $i) (i32.const 0x1000000))
            (local.set $i (i32.sub (local.get $i) (i32.const 1)))
            (br_if $fill (local.get $i)))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 114)) ;; r
        (then
          (call $recurse (i32.const 40))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 99)) ;; c
        (then
          (drop (call $fd_close (i32.const 1)))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 119)) ;; w
        (then
          ;; No iovecs: writes nothing, and fails only if fd 1 is closed.
          (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 12))
            (then
              (global.set $out_ptr (i32.const 64))
              (global.set $out_len (i32.const 73))))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 109)) ;; m
        (then
          (global.set $mark (i32.const 1))
          (i32.store (i32.const 8) (i32.const 1))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 112)) ;; p
        (then
          (local.set $i (i32.const 0))
          (block $clean
            (loop $bytes
              (br_if $clean (i32.ge_u (local.get $i) (i32.const 1024)))
              (br_if $clean (i32.or (global.get $mark) (i32.load (i32.const 8))))
              (br_if $clean (i32.load8_u (i32.add (i32.add (local.get $ptr) (local.get $len)) (local.get $i))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $bytes)))
          (if (i32.or (i32.lt_u (local.get $i) (i32.const 1024))
                (i32.or (global.get $mark) (i32.load (i32.const 8))))
            (then
              (global.set $out_ptr (i32.const 64))
              (global.set $out_len (i32.const 73))))
          (br $done)))
      (if (i32.eq (local.get $mode) (i32.const 106)) ;; j
        (then
          (global.set $out_ptr (i32.const 48))
          (global.set $out_len (i32.const 8)))))
    (i32.const 0))

  (func (export "sluice_output") (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (global.get $out_ptr)) (i64.const 32))
      (i64.extend_i32_u (global.get $out_len)))))
