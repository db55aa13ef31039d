// Package readme tests README.md as a reader uses it, so that it cannot go
// stale: every shell block is run against a fresh gateway, every comment line
// that shows a command's output is compared with what the command printed,
// and every YAML configuration example is checked with `sluice config check`.
//
// A README block is one of:
//
//   - a shell block (```sh, ```bash, ```shell, ```console): run, in README
//     order, in one bash session whose working folder holds the `make run`
//     gateway's ./data and ./bin/sluice, so that what one block creates ($T,
//     a client, a key) is there for the next, as in a reader's terminal;
//   - a YAML block: written to a file and checked with `sluice config check`,
//     each ${VAR} it names set to a placeholder;
//   - a Go block that is a whole program (package main): run with `go run`
//     in the same session, after the `// export VAR=…` lines its comments
//     ask the reader to run;
//   - anything else (Go fragments, python, json, rego, text): not run. A
//     block of a language the test does not know fails it.
//
// A comment line placed right before a block changes that:
//
//	<!-- doctest: skip: REASON -->   the block is not run (or not checked), for the reason given
//	<!-- doctest: setup NAME -->     the block runs in a session of its own, against a gateway
//	                                 started with testdata/NAME.yaml, after testdata/NAME.sh
//
// The README's first block, `make run` and `make test`, is the one exception:
// the test does what `make run` does (bin/sluice serve, no configuration) and
// is itself run by `make test`.
//
// In a shell block, a line that starts with "#" after a command shows that
// command's output (several such lines show several lines of output, or one
// long line cut for reading: see Match). The comparison is loose: "…" stands
// for any text. An output that begins with an HTTP status ("# 400 {…}") is
// compared with the status of the command's last curl call. A command shown
// without output must succeed: exit 0, and every curl call in it answered
// below 400.
//
// To call the test's gateway, the commands are run with its addresses in place
// of 127.0.0.1:8080 and :8081 (localhost too), and with curl quiet (-sS, as a
// terminal would show it) and reporting each HTTP status to the test on
// standard error. A key id written key_0123456789ab is the id of the last key
// an earlier command printed, the one a reader would copy.
package readme
