package storage

// RecordFor is recordFor, for the tests of package storage_test, which
// run against a real backend (filestore imports storage, so those tests
// cannot live in package storage).
var RecordFor = recordFor
