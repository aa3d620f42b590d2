package nobody

import (
	"net/http"
	"testing"
)

// TestHas: which requests count as carrying a body.
func TestHas(t *testing.T) {
	for _, tt := range []struct {
		name          string
		contentLength int64
		protoMajor    int
		want          bool
	}{
		{"HTTP/1.1 without a body", 0, 1, false},
		{"HTTP/1.1 Content-Length: 1000", 1000, 1, true},
		{"HTTP/1.1 chunked", -1, 1, true},
		{"HTTP/2 without a body", 0, 2, false},
		{"HTTP/2 content-length: 1000", 1000, 2, true},
		{"HTTP/2 stream left open, no length", -1, 2, false},
	} {
		r := &http.Request{ContentLength: tt.contentLength, ProtoMajor: tt.protoMajor}
		if got := Has(r); got != tt.want {
			t.Errorf("%s: Has = %v, want %v", tt.name, got, tt.want)
		}
	}
}
