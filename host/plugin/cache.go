package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/tetratelabs/wazero"
)

// The on-disk compilation cache holds machine code that runs as it is found,
// and wazero reads an entry by its file name only: a file copied over
// another's runs in place of it, whatever pin the configuration holds. So
// each module gets a folder of its own, named by the SHA-256 of the bytes
// compiled (after rewriting), holding wazero's cache for that module alone,
// and a record of the SHA-256 of every file in it, bound to the module's
// digest; wazero puts its version, architecture and operating system in the
// path of its files, which the record covers. Before a load the host checks
// the folder against its record, and a folder that does not match, or has no
// record, is removed, so the module is compiled afresh rather than run from
// it. A folder copied whole under another module's name does not match
// either: its record names the other module.
//
// The record is not a signature: whoever can write the folder can write a
// matching record. What keeps others out is the folder's mode: created 0700,
// and refused if group or others may write it.

// hexDigest returns the hex SHA-256 digest of b.
func hexDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// cacheRecord is the name of the record in a module's cache folder.
const cacheRecord = "sluice-cache.sha256"

// moduleCache is the on-disk compilation cache of one Runtime.
type moduleCache struct {
	dir   string
	locks sync.Map // module digest to *sync.Mutex: one load of a module at a time writes its folder

	mu       sync.Mutex
	rejected int // folders removed because they did not match their record
}

func newModuleCache(dir string) (*moduleCache, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %v): the cache holds code the gateway runs; chmod 700 it", dir, info.Mode().Perm())
	}
	// wazero's own cache of the earlier layout, shared by all modules, is
	// never read again.
	if old, _ := filepath.Glob(filepath.Join(dir, "wazero-*")); len(old) > 0 {
		for _, path := range old {
			os.RemoveAll(path)
		}
	}
	return &moduleCache{dir: dir}, nil
}

// open returns the compilation cache for the module whose compiled bytes
// have the hex SHA-256 digest, having removed its folder if it did not match
// its record, and a function to call after the module compiled, which
// records the folder's contents.
func (c *moduleCache) open(digest string) (wazero.CompilationCache, func() error, func(), error) {
	lock, _ := c.locks.LoadOrStore(digest, &sync.Mutex{})
	mu := lock.(*sync.Mutex)
	mu.Lock()
	dir := filepath.Join(c.dir, "sluice-"+digest)
	if _, err := os.Stat(dir); err == nil {
		want, _ := os.ReadFile(filepath.Join(dir, cacheRecord))
		got, err := folderDigest(dir, digest)
		if err != nil || string(want) != got {
			if err := os.RemoveAll(dir); err != nil {
				mu.Unlock()
				return nil, nil, nil, fmt.Errorf("compilation cache: remove %s, which does not match its record: %w", dir, err)
			}
			c.mu.Lock()
			c.rejected++
			c.mu.Unlock()
		}
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		mu.Unlock()
		return nil, nil, nil, fmt.Errorf("compilation cache %s: %w", dir, err)
	}
	record := func() error {
		sum, err := folderDigest(dir, digest)
		if err != nil {
			return err
		}
		tmp := filepath.Join(dir, cacheRecord+".tmp")
		if err := os.WriteFile(tmp, []byte(sum), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, cacheRecord))
	}
	return cache, record, mu.Unlock, nil
}

// Rejected returns how many cache folders were removed because they did not
// match their record.
func (c *moduleCache) Rejected() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rejected
}

// folderDigest hashes the module digest and every regular file under dir but
// the record, with its path relative to dir, in path order.
func folderDigest(dir, digest string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.Type()&fs.ModeSymlink != 0:
			return errors.New("a symbolic link in a cache folder")
		case d.Type().IsRegular() && d.Name() != cacheRecord && filepath.Ext(d.Name()) != ".tmp":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	h := sha256.New()
	io.WriteString(h, "sluice compilation cache v1\n"+digest+"\n")
	for _, path := range files {
		rel, _ := filepath.Rel(dir, path)
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		info, err := f.Stat()
		if err == nil {
			io.WriteString(h, filepath.ToSlash(rel)+"\n"+strconv.FormatInt(info.Size(), 10)+"\n")
			_, err = io.Copy(h, f)
		}
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
