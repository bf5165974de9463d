// Package remotewrite is a Prometheus remote-write 1.0 client: it encodes
// WriteRequests (protobuf, snappy block) and posts them for a tenant. Tests,
// the load generator and the correctness checker use it.
package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Encode returns the wire form of req: protobuf, snappy block-compressed.
func Encode(req *prompb.WriteRequest) ([]byte, error) {
	b, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode write request: %w", err)
	}
	return snappy.Encode(nil, b), nil
}

// Client posts remote-write requests to one URL.
type Client struct {
	// URL is the push endpoint, e.g. http://localhost:8080/api/v1/push.
	URL string
	// Tenant is sent in X-Scope-OrgID unless empty.
	Tenant string
	// HTTP is the client to use; nil means a client with a 30s timeout.
	HTTP *http.Client
}

// Error is a push the server answered with a non-2xx status.
type Error struct {
	StatusCode int
	Body       string
	// RetryAfter is the server's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("remote write: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Body)
}

// Retryable tells whether Prometheus would retry the push: 5xx and 429.
func (e *Error) Retryable() bool {
	return e.StatusCode/100 == 5 || e.StatusCode == http.StatusTooManyRequests
}

// Push encodes and sends req. A non-2xx answer is returned as *Error.
func (c *Client) Push(ctx context.Context, req *prompb.WriteRequest) error {
	body, err := Encode(req)
	if err != nil {
		return err
	}
	return c.PushRaw(ctx, body, nil)
}

// PushRaw sends an already encoded body. Headers in extra replace the
// remote-write defaults (Content-Type, Content-Encoding, version), which
// lets tests send malformed requests; an empty value removes a header.
func (c *Client) PushRaw(ctx context.Context, body []byte, extra map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "neocortex-remotewrite")
	if c.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.Tenant)
	}
	for k, v := range extra {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &Error{StatusCode: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
