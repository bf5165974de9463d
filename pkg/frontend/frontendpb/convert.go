package frontendpb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// FromHTTPRequest encodes r, reading its whole body; limit the body with
// http.MaxBytesReader beforehand.
func FromHTTPRequest(r *http.Request) (*HTTPRequest, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		body = b
	}
	return &HTTPRequest{
		Method:  r.Method,
		Url:     r.URL.RequestURI(),
		Headers: FromHTTPHeader(r.Header),
		Body:    body,
	}, nil
}

// ToHTTPRequest decodes r into a request for tenantID: the tenant is both
// in the request's context (derived from ctx) and in its X-Scope-OrgID
// header.
func ToHTTPRequest(ctx context.Context, r *HTTPRequest, tenantID string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(tenant.WithTenant(ctx, tenantID), r.Method, r.Url, bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	req.RequestURI = r.Url
	req.Header = ToHTTPHeader(r.Headers)
	req.Header.Set(tenant.Header, tenantID)
	return req, nil
}

// FromHTTPHeader encodes h, sorted by name.
func FromHTTPHeader(h http.Header) []*Header {
	out := make([]*Header, 0, len(h))
	for name, values := range h {
		out = append(out, &Header{Name: name, Values: values})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ToHTTPHeader decodes hs.
func ToHTTPHeader(hs []*Header) http.Header {
	h := make(http.Header, len(hs))
	for _, e := range hs {
		for _, v := range e.Values {
			h.Add(e.Name, v)
		}
	}
	return h
}
