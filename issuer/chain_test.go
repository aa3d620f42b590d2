package issuer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestChain: an issuer the Before hook refuses is skipped, a failing one
// is reported to Failed and the next is asked; when all fail, the error
// names each.
func TestChain(t *testing.T) {
	st := filestore.New(t.TempDir())
	names := []string{"chain.test"}
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, names)
	if err != nil {
		t.Fatal(err)
	}
	budget := errors.New("no budget left")
	skipped, failing, good := &localca.CA{Storage: st}, &localca.CA{Storage: st}, &localca.CA{Storage: st}
	var failed []error
	c := &issuer.Chain{
		Issuers: []issuer.Issuer{skipped, failing, good},
		Before: func(_ context.Context, iss issuer.Issuer, _ issuer.Request) error {
			if iss == skipped {
				return budget
			}
			return nil
		},
		Failed: func(_ context.Context, _ issuer.Issuer, err error, _ time.Duration) { failed = append(failed, err) },
	}
	// The failing issuer gets a request whose names do not match the CSR.
	req := issuer.Request{Names: names, CSR: csr}
	c.Issuers[1] = wrongNames{failing}
	cert, err := c.Issue(t.Context(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if cert.Leaf.DNSNames[0] != "chain.test" || len(failed) != 1 {
		t.Errorf("issued %v, %d failures reported, want chain.test and 1", cert.Leaf.DNSNames, len(failed))
	}

	c.Issuers = c.Issuers[:2]
	_, err = c.Issue(t.Context(), req)
	if !errors.Is(err, budget) || !strings.Contains(err.Error(), "other.test") {
		t.Errorf("all failed: %v, want both causes", err)
	}
	if _, err := (&issuer.Chain{}).Issue(t.Context(), req); err == nil {
		t.Error("an empty chain issued")
	}
}

// wrongNames asks for a name the CSR does not hold, which any issuer
// refuses.
type wrongNames struct{ issuer.Issuer }

func (w wrongNames) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	req.Names = []string{"other.test"}
	return w.Issuer.Issue(ctx, req)
}

// TestChainLog: "trying the next" is logged only when an issuer is left
// to try, and the exhausted chain logs its final error once.
func TestChainLog(t *testing.T) {
	st := filestore.New(t.TempDir())
	names := []string{"chain.test"}
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, names)
	if err != nil {
		t.Fatal(err)
	}
	req := issuer.Request{Names: names, CSR: csr}
	failing, good := wrongNames{&localca.CA{Storage: st}}, &localca.CA{Storage: st}
	for _, tc := range []struct {
		name          string
		issuers       []issuer.Issuer
		next, final   int
		wantIssueFail bool
	}{
		{"one failing", []issuer.Issuer{failing}, 0, 1, true},
		{"two failing", []issuer.Issuer{failing, failing}, 1, 1, true},
		{"failing then good", []issuer.Issuer{failing, good}, 1, 0, false},
		{"good", []issuer.Issuer{good}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf strings.Builder
			c := &issuer.Chain{Issuers: tc.issuers, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
			_, err := c.Issue(t.Context(), req)
			if (err != nil) != tc.wantIssueFail {
				t.Fatalf("Issue: %v", err)
			}
			log := buf.String()
			if n := strings.Count(log, "trying the next"); n != tc.next {
				t.Errorf("%d lines say \"trying the next\", want %d:\n%s", n, tc.next, log)
			}
			if n := strings.Count(log, "no issuer left to try"); n != tc.final {
				t.Errorf("%d final errors logged, want %d:\n%s", n, tc.final, log)
			}
			if tc.final > 0 && !strings.Contains(log, "level=ERROR") {
				t.Errorf("the final error is not logged as an error:\n%s", log)
			}
		})
	}
}
