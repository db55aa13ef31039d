;; A module that names its functions in every place the rewriter renumbers
;; when it adds the yield import: calls, call_indirect through a table filled
;; by active element segments of both encodings, a declarative segment,
;; ref.func in code and in a global, exports and the start function.
;; run(x) = double(x) + inc(x) + dec(x) + triple(x) + 100 (set by start).
(module
  (import "env" "double" (func $double (param i32) (result i32)))
  (type $unary (func (param i32) (result i32)))
  (memory 1)
  (table $t 4 funcref)
  (global $started (mut i32) (i32.const 0))
  (global $ref funcref (ref.func $inc))
  (elem (i32.const 0) $inc $dec)
  (elem (table $t) (i32.const 2) funcref (ref.func $triple) (ref.null func))
  (elem declare func $dec)
  (func $inc (type $unary) (i32.add (local.get 0) (i32.const 1)))
  (func $dec (type $unary) (i32.sub (local.get 0) (i32.const 1)))
  (func $triple (type $unary) (i32.mul (local.get 0) (i32.const 3)))
  (func $init (global.set $started (i32.const 100)))
  (start $init)
  (func (export "run") (param i32) (result i32)
    (if (ref.is_null (ref.func $dec)) (then unreachable))
    (i32.add
      (i32.add (call $double (local.get 0))
               (call_indirect (type $unary) (local.get 0) (i32.const 0)))
      (i32.add (call_indirect (type $unary) (local.get 0) (i32.const 1))
               (i32.add (call_indirect (type $unary) (local.get 0) (i32.const 2))
                        (global.get $started)))))
  (func (export "spin") (loop (br 0)))
  (export "inc" (func $inc)))
