package distributor

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// Content types of the remote-write protocol.
const (
	rw1ContentType = "application/x-protobuf"
	rw1ProtoParam  = "prometheus.WriteRequest"
	rw2ProtoParam  = "io.prometheus.write.v2.Request"
)

// PushHandler serves Prometheus remote write 1.0: a snappy-compressed
// protobuf WriteRequest. The tenant must already be in the request context.
func (d *Distributor) PushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := tenant.FromContext(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		req, raw, status, err := d.decode(r)
		if err != nil {
			d.metrics.rejectedRequests.WithLabelValues(tenantID, strconv.Itoa(status)).Inc()
			http.Error(w, err.Error(), status)
			return
		}
		if err := d.push(r.Context(), tenantID, req, raw); err != nil {
			status, msg, retryAfter := httpError(err)
			if retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			}
			d.metrics.rejectedRequests.WithLabelValues(tenantID, strconv.Itoa(status)).Inc()
			if status >= 500 {
				d.logger.Warn("push failed", "tenant", tenantID, "err", msg)
			}
			http.Error(w, msg, status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// decode reads and decodes the body of a remote-write request, returning the
// HTTP status that fits when it cannot.
// The raw encoding of each series comes along (see remotewrite.UnmarshalRaw).
func (d *Distributor) decode(r *http.Request) (*prompb.WriteRequest, [][]byte, int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != rw1ContentType {
			return nil, nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Type %q: remote write needs %s", ct, rw1ContentType)
		}
		switch proto := params["proto"]; proto {
		case "", rw1ProtoParam:
		case rw2ProtoParam:
			return nil, nil, http.StatusUnsupportedMediaType, fmt.Errorf("remote write 2.0 (proto=%s) is not supported yet; send remote write 1.0 (proto=%s)", rw2ProtoParam, rw1ProtoParam)
		default:
			return nil, nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported protobuf message %q: send proto=%s", proto, rw1ProtoParam)
		}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return nil, nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q: remote write bodies are snappy-compressed", enc)
	}
	limit := int64(d.cfg.MaxRecvMsgSize)
	if r.ContentLength > limit {
		return nil, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than the limit of %d bytes", limit)
		}
		return nil, nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, nil, http.StatusBadRequest, fmt.Errorf("body is not snappy block-compressed: %w", err)
	}
	if int64(n) > limit {
		return nil, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed request of %d bytes is larger than the limit of %d bytes", n, limit)
	}
	buf, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, nil, http.StatusBadRequest, fmt.Errorf("body is not snappy block-compressed: %w", err)
	}
	var (
		req prompb.WriteRequest
		raw [][]byte
	)
	// The request's strings point into buf, which lives as long as they do.
	if err := remotewrite.UnmarshalRaw(buf, &req, &raw); err != nil {
		return nil, nil, http.StatusBadRequest, fmt.Errorf("body is not a protobuf remote-write WriteRequest: %w", err)
	}
	return &req, raw, 0, nil
}
