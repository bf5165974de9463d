package bucketblock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/thanos-io/objstore"
)

// byteRange is the half-open range [start, end) of an object.
type byteRange struct{ start, end int64 }

// part is one range read covering the items [first, last) of a sorted list.
type part struct {
	byteRange
	first, last int
}

// partition groups n ranges, sorted by start, into as few reads as it can
// while never reading more than maxGap unwanted bytes between two of them
// nor more than maxSize bytes in one read (unless a single range is larger).
func partition(n int, rng func(i int) byteRange, maxGap, maxSize int64) []part {
	var parts []part
	for i := 0; i < n; i++ {
		r := rng(i)
		if len(parts) > 0 {
			p := &parts[len(parts)-1]
			if r.start <= p.end+maxGap && max(p.end, r.end)-p.start <= maxSize {
				p.end = max(p.end, r.end)
				p.last = i + 1
				continue
			}
		}
		parts = append(parts, part{byteRange: r, first: i, last: i + 1})
	}
	return parts
}

// readAll range-reads [off, off+length) of name. A read that ends early
// (past the end of the object) is an error unless allowShort, when it
// returns what there was.
func readAll(ctx context.Context, bkt objstore.BucketReader, name string, off, length int64, m *Metrics, kind string) ([]byte, error) {
	return readRange(ctx, bkt, name, off, length, false, m, kind)
}

func readRange(ctx context.Context, bkt objstore.BucketReader, name string, off, length int64, allowShort bool, m *Metrics, kind string) ([]byte, error) {
	rc, err := bkt.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, fmt.Errorf("read %s bytes %d-%d: %w", name, off, off+length, err)
	}
	defer rc.Close()
	buf := make([]byte, length)
	n, err := io.ReadFull(rc, buf)
	m.rangeReads.WithLabelValues(kind).Inc()
	m.bytesRead.WithLabelValues(kind).Add(float64(n))
	if err != nil {
		if allowShort && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			return buf[:n], nil
		}
		return nil, fmt.Errorf("read %s bytes %d-%d: %w", name, off, off+length, err)
	}
	return buf, nil
}

// yoloString views b as a string without copying: only for look-ups that do
// not keep the string.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
