package proxy

// The development mode's defaults: what the certkeeper command's proxy
// serves when given no policy, CA or configuration, with certkeeper's
// local CA, so that "certkeeper proxy" alone puts HTTPS in front of a
// site being developed on this machine.
const (
	// DevAddr is where it serves HTTPS: loopback only, on a port a user
	// may open.
	DevAddr = "127.0.0.1:8443"
	// DevBackend is the backend it forwards to.
	DevBackend = "http://127.0.0.1:8080"
	// DevName is the one name it serves, and the name whose certificate
	// clients without SNI get.
	DevName = "localhost"
)
