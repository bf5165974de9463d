package distributor

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// maxPooledRequestBytes bounds the decompressed size of a request whose
// buffers go back to the pool: one rare huge request must not pin its
// memory for the many small ones.
const maxPooledRequestBytes = 8 << 20

// pushRequest is one push request in flight with everything it decodes
// into: the body as read, decompressed, and decoded (whose label strings
// point into the decompressed bytes). It is pooled, because the same few
// hundred kilobytes per request would otherwise be allocated, zeroed and
// collected again for every request.
//
// Its holders count references: the HTTP handler holds one until it has
// answered, and the replication holds one until its last RPC has ended,
// which can be after the handler has answered (quorum was reached).
type pushRequest struct {
	refs atomic.Int32

	body    bytes.Buffer
	decoded []byte
	arena   remotewrite.Arena
	arenaV2 remotewrite.ArenaV2
	v2      bool // the body is a remote-write 2.0 request
	req     prompb.WriteRequest
	raw     [][]byte // raw[i] is the encoding of req.Timeseries[i] in decoded
	keys    []uint32 // ring tokens of the series (then of the metadata)
	all     []int    // 0, 1, …: the indexes of all items (allItems)

	// wire is the one encoding of the whole request that every ingester
	// is sent when all of them replicate every series: the decompressed
	// body itself when validation changed nothing, else encoded once
	// (encodeOnce) into encoded.
	wire       []byte
	encoded    []byte
	encodeOnce sync.Once
	encodeErr  error

	// What was written, for remote write 2.0's response headers.
	samplesWritten, histogramsWritten, exemplarsWritten int
}

var pushRequests = sync.Pool{New: func() any { return new(pushRequest) }}

// wireReleaser hands gRPC a reference to a pushRequest's wire bytes: gRPC
// puts it back (mem.BufferPool) once it has written them out, which
// releases the reference.
type wireReleaser struct{ pr *pushRequest }

func (w wireReleaser) Get(n int) *[]byte { b := make([]byte, n); return &b } // never called: gRPC only frees
func (w wireReleaser) Put(*[]byte)       { w.pr.release() }

// getPushRequest returns a pushRequest with one reference, its caller's.
func getPushRequest() *pushRequest {
	pr := pushRequests.Get().(*pushRequest)
	pr.refs.Store(1)
	return pr
}

// allItems returns the indexes 0 to n-1.
func (pr *pushRequest) allItems(n int) []int {
	for i := len(pr.all); i < n; i++ {
		pr.all = append(pr.all, i)
	}
	return pr.all[:n]
}

// retain adds a reference.
func (pr *pushRequest) retain() { pr.refs.Add(1) }

// release drops a reference; the last one returns pr to the pool, unless
// it grew too big. Nothing of pr may be used after one's own release.
func (pr *pushRequest) release() {
	if pr.refs.Add(-1) != 0 {
		return
	}
	if cap(pr.decoded) > maxPooledRequestBytes || pr.body.Cap() > maxPooledRequestBytes || cap(pr.encoded) > maxPooledRequestBytes {
		return
	}
	pr.body.Reset()
	pr.req.Metadata = pr.req.Metadata[:0]
	pr.keys = pr.keys[:0]
	pr.v2 = false
	pr.wire, pr.encoded, pr.encodeOnce, pr.encodeErr = nil, pr.encoded[:0], sync.Once{}, nil
	pr.samplesWritten, pr.histogramsWritten, pr.exemplarsWritten = 0, 0, 0
	pushRequests.Put(pr)
}
