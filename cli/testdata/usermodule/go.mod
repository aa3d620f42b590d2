module example.test/mycertkeeper

go 1.26.0

require (
	github.com/certkeeper/certkeeper v0.0.0
	github.com/libdns/libdns v1.1.1
	github.com/miekg/dns v1.1.73
)

// The test adds every requirement of certkeeper's go.mod here (as the
// indirect ones a user's go mod tidy writes), so that the build needs no
// go.mod file that building certkeeper did not fetch.


replace github.com/certkeeper/certkeeper => ../../..
