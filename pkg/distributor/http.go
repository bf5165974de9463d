package distributor

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/golang/snappy"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// Content types of the remote-write protocol.
const (
	rw1ContentType = "application/x-protobuf"
	rw1ProtoParam  = "prometheus.WriteRequest"
	rw2ProtoParam  = "io.prometheus.write.v2.Request"
)

// PushHandler serves Prometheus remote write 1.0 (a snappy-compressed
// protobuf prometheus.WriteRequest) and 2.0 (io.prometheus.write.v2.Request,
// told by the Content-Type's proto parameter). The tenant must already be
// in the request context.
func (d *Distributor) PushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := tenant.FromContext(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		pr := getPushRequest()
		// Released once answered: the error messages below may quote labels
		// that point into the request's buffers.
		defer pr.release()
		if status, err := d.decode(r, pr); err != nil {
			d.metrics.forget.Seen(tenantID)
			d.metrics.rejectedRequests.WithLabelValues(tenantID, strconv.Itoa(status)).Inc()
			http.Error(w, err.Error(), status)
			return
		}
		err = d.push(r.Context(), tenantID, pr)
		if pr.v2 {
			// Remote write 2.0 asks for what was written, also when part
			// of the request was refused.
			w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(pr.samplesWritten))
			w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(pr.histogramsWritten))
			w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(pr.exemplarsWritten))
		}
		if err != nil {
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

// decode reads and decodes the body of a remote-write request into pr,
// returning the HTTP status that fits when it cannot. The raw encoding of
// each series comes along (see remotewrite.Arena.Unmarshal).
func (d *Distributor) decode(r *http.Request, pr *pushRequest) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != rw1ContentType {
			return http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Type %q: remote write needs %s", ct, rw1ContentType)
		}
		switch proto := params["proto"]; proto {
		case "", rw1ProtoParam:
		case rw2ProtoParam:
			pr.v2 = true
		default:
			return http.StatusUnsupportedMediaType, fmt.Errorf("unsupported protobuf message %q: send proto=%s (remote write 1.0) or proto=%s (2.0)", proto, rw1ProtoParam, rw2ProtoParam)
		}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q: remote write bodies are snappy-compressed", enc)
	}
	limit := int64(d.cfg.MaxRecvMsgSize)
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit)
	}
	if r.ContentLength > 0 {
		pr.body.Grow(int(r.ContentLength) + bytes.MinRead) // room for the final read that sees EOF
	}
	if _, err := pr.body.ReadFrom(http.MaxBytesReader(nil, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than the limit of %d bytes", limit)
		}
		return http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	body := pr.body.Bytes()
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return http.StatusBadRequest, fmt.Errorf("body is not snappy block-compressed: %w", err)
	}
	if int64(n) > limit {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed request of %d bytes is larger than the limit of %d bytes", n, limit)
	}
	if cap(pr.decoded) < n {
		pr.decoded = make([]byte, n)
	}
	buf, err := snappy.Decode(pr.decoded[:cap(pr.decoded)], body)
	if err != nil {
		return http.StatusBadRequest, fmt.Errorf("body is not snappy block-compressed: %w", err)
	}
	// The request's strings point into buf, which lives as long as pr.
	if pr.v2 {
		// A 2.0 series is encoded with references to the request's
		// symbols: it is encoded anew for the ingesters (raw nil).
		pr.raw = nil
		if err := pr.arenaV2.Unmarshal(buf, &pr.req); err != nil {
			return http.StatusBadRequest, fmt.Errorf("body is not a protobuf remote-write 2.0 %s: %w", rw2ProtoParam, err)
		}
		return 0, nil
	}
	if err := pr.arena.Unmarshal(buf, &pr.req, &pr.raw); err != nil {
		return http.StatusBadRequest, fmt.Errorf("body is not a protobuf remote-write WriteRequest: %w", err)
	}
	pr.wire = buf // forwarded as it came, if validation changes nothing
	return 0, nil
}
