package metrics_test

import (
	"path/filepath"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestDeployFailures: a deployment the check rejects counts as a failure
// and sets certkeeper_deploy_failing until one succeeds.
func TestDeployFailures(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	got, err := certkeeper.Issue(t.Context(), filestore.New(t.TempDir()), certkeeper.IssueRequest{
		Names: []string{"d.test"}, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{ca}}})
	if err != nil {
		t.Fatal(err)
	}
	certs := []*storage.Certificate{got.Record}
	d := &certdeploy.Deployer{Format: certdeploy.PEM, Dir: filepath.Join(t.TempDir(), "out"), Check: "exit 1"}
	x := metrics.New()
	if err := x.RegisterDeploy(d); err != nil {
		t.Fatal(err)
	}
	want := func(failures, failing float64) {
		t.Helper()
		mfs, err := x.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		values := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				values[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		if values["certkeeper_deploy_failures_total"] != failures || values["certkeeper_deploy_failing"] != failing {
			t.Errorf("failures_total %v, failing %v; want %v, %v", values["certkeeper_deploy_failures_total"], values["certkeeper_deploy_failing"], failures, failing)
		}
	}
	want(0, 0)
	for range 2 {
		if _, err := d.Deploy(t.Context(), certs); err == nil {
			t.Fatal("Deploy with a failing check succeeded")
		}
	}
	want(2, 1)
	d.Check = ""
	if _, err := d.Deploy(t.Context(), certs); err != nil {
		t.Fatal(err)
	}
	want(2, 0)
}
