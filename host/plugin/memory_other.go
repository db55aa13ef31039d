//go:build !linux

package plugin

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// memoryImage is a snapshot of linear memory. Without Linux's copy-on-write
// mappings it is a copy, which a reset copies back whole.
type memoryImage struct{ bytes []byte }

// linearMemory is unused here: wazero allocates the memory.
type linearMemory struct{}

func instantiateContext(ctx context.Context, _ *memoryImage) (context.Context, func() (*linearMemory, error)) {
	return ctx, func() (*linearMemory, error) { return &linearMemory{}, nil }
}

func takeImage(mem api.Memory, _ *linearMemory) (*memoryImage, error) {
	b, _ := mem.Read(0, mem.Size())
	return &memoryImage{bytes: append([]byte(nil), b...)}, nil
}

func (m *linearMemory) reset(img *memoryImage, mem api.Memory) bool {
	return mem.Write(0, img.bytes)
}

// forget does nothing: a reset copies the image back whole.
func (m *linearMemory) forget(*memoryImage) {}

func (img *memoryImage) close() {}
