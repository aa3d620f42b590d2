package status

import (
	"encoding/json"
	"io"
)

// ArrayWriter writes Certs to W as one JSON array, one at a time, in the
// same form as a json.Encoder with a two-space indent writes the whole
// list: "certkeeper status --json" and /status.json stream through it,
// never holding every entry. Call Close to end the array.
type ArrayWriter struct {
	W io.Writer
	n int
}

// Write appends c to the array.
func (a *ArrayWriter) Write(c Cert) error {
	data, err := json.MarshalIndent(c, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	if _, err := io.WriteString(a.W, sep); err != nil {
		return err
	}
	_, err = a.W.Write(data)
	return err
}

// Len returns how many entries were written.
func (a *ArrayWriter) Len() int { return a.n }

// Close ends the array.
func (a *ArrayWriter) Close() error {
	end := "\n]\n"
	if a.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(a.W, end)
	return err
}
