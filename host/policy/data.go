package policy

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
)

// This file holds the data a policy folder carries: .json and .yaml files
// beside the rules, loaded as opa eval -d and opa test load them, and
// merged with the data the gateway writes.

// gatewayPaths are the documents the gateway writes, or computes, under
// data: a policy folder's data files may not define them.
var gatewayPaths = []string{"/sluice/tiers", "/sluice/departments", "/sluice/clients", "/sluice/derived"}

// isDataFile reports whether name is a data file, by its extension, as
// OPA's loader tells them.
func isDataFile(name string) bool {
	switch path.Ext(name) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// readDataFiles reads the data files of fsys, hidden names excepted, in
// lexical order, for the revision: loadData parses them.
func readDataFiles(fsys fs.FS) ([]regoFile, error) {
	files, err := readFiles(fsys, isDataFile)
	if err != nil {
		return nil, fmt.Errorf("read data files: %w", err)
	}
	return files, nil
}

// loadData loads the data files of fsys with OPA's loader, as opa eval -d
// FOLDER does: a file's document goes under the path of its folder
// (rates/data.json is data.rates), and files of one folder are merged.
// Hidden names are skipped, as for .rego files. It returns nil when there
// are none, and refuses documents at the paths the gateway writes.
func loadData(fsys fs.FS) (map[string]any, error) {
	res, err := loader.NewFileLoader().WithFS(fsys).WithRegoVersion(ast.RegoV1).Filtered([]string{"."},
		func(_ string, info fs.FileInfo, depth int) bool {
			if depth > 0 && strings.HasPrefix(info.Name(), ".") {
				return true
			}
			return !info.IsDir() && !isDataFile(info.Name())
		})
	if err != nil {
		return nil, fmt.Errorf("load data files: %w", err)
	}
	if len(res.Documents) == 0 {
		return nil, nil
	}
	for _, p := range gatewayPaths {
		if _, ok := lookup(res.Documents, p); ok {
			return nil, fmt.Errorf("load data files: data%s is written by the gateway and cannot come from a data file",
				strings.ReplaceAll(p, "/", "."))
		}
	}
	return res.Documents, nil
}

// lookup returns the value at the slash-separated path p of doc.
func lookup(doc map[string]any, p string) (any, bool) {
	var cur any = doc
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// mergeData returns base with extra merged in, object by object; a value
// both define, other than two objects, is an error. Neither is modified.
func mergeData(base, extra map[string]any) (map[string]any, error) {
	return mergeAt(base, extra, "data")
}

func mergeAt(base, extra map[string]any, at string) (map[string]any, error) {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range extra {
		cur, ok := out[k]
		if !ok {
			out[k] = v
			continue
		}
		cm, cok := cur.(map[string]any)
		vm, vok := v.(map[string]any)
		if !cok || !vok {
			return nil, fmt.Errorf("%s.%s is defined twice", at, k)
		}
		m, err := mergeAt(cm, vm, at+"."+k)
		if err != nil {
			return nil, err
		}
		out[k] = m
	}
	return out, nil
}

// withValue returns doc with value at p, copying the objects on the way so
// that doc itself is left as it was.
func withValue(doc map[string]any, p storage.Path, value any) map[string]any {
	out := maps.Clone(doc)
	if out == nil {
		out = map[string]any{}
	}
	if len(p) == 1 {
		out[p[0]] = value
		return out
	}
	child, _ := out[p[0]].(map[string]any)
	out[p[0]] = withValue(child, p[1:], value)
	return out
}

// LoadDataFiles loads the data files and folders at paths with OPA's
// loader, as opa eval --data does: a file's document at the root of data,
// a folder's files under the paths of their folders, and "a.b:file.json"
// under data.a.b. It is for the data the gateway would write (clients,
// departments), which sluice policy eval cannot read from a running
// gateway.
func LoadDataFiles(paths []string) (map[string]any, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	res, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).Filtered(paths,
		func(_ string, info fs.FileInfo, depth int) bool {
			return depth > 0 && !info.IsDir() && !isDataFile(info.Name())
		})
	if err != nil {
		return nil, fmt.Errorf("policy: data files: %w", err)
	}
	return res.Documents, nil
}

// MergeData returns base with extra merged in, object by object, as the
// gateway merges a policy folder's data files with its own; a value both
// define, other than two objects, is an error. Neither is modified.
func MergeData(base, extra map[string]any) (map[string]any, error) { return mergeData(base, extra) }
