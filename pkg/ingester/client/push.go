package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
)

// PushEncoded is Push of an already encoded prometheus.WriteRequest, sent
// as the message's write_request field without being copied into a
// marshalled message first. buf belongs to gRPC from the call on: it is
// handed back to pool (if not nil) once gRPC has written it out, which may
// be after PushEncoded returns, and never if the call fails before sending.
func (c *Client) PushEncoded(ctx context.Context, buf *[]byte, pool mem.BufferPool) error {
	return c.conn.Invoke(ctx, ingesterpb.Ingester_Push_FullMethodName,
		&encodedPush{data: mem.NewBuffer(buf, pool), size: len(*buf)}, new(ingesterpb.PushResponse),
		grpc.ForceCodecV2(pushCodec{}))
}

// encodedPush is an ingesterpb.PushRequest whose write_request is already
// encoded.
type encodedPush struct {
	data mem.Buffer
	size int
}

// pushCodec marshals an encodedPush as the field header followed by its
// buffer, and leaves everything else (the response) to the proto codec.
// Its name is the proto codec's: the ingester decodes an ordinary
// PushRequest.
type pushCodec struct{}

func (pushCodec) Marshal(v any) (mem.BufferSlice, error) {
	p, ok := v.(*encodedPush)
	if !ok {
		return nil, fmt.Errorf("push codec cannot marshal %T", v)
	}
	hdr := protowire.AppendTag(make([]byte, 0, 12), 1, protowire.BytesType) // PushRequest.write_request
	hdr = protowire.AppendVarint(hdr, uint64(p.size))
	return mem.BufferSlice{mem.SliceBuffer(hdr), p.data}, nil
}

func (pushCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(proto.Name).Unmarshal(data, v)
}

func (pushCodec) Name() string { return proto.Name }
