package acmeca_test

import "encoding/pem"

// nextPEM returns the DER of the next CERTIFICATE block and the rest.
func nextPEM(data []byte) ([]byte, []byte) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, nil
		}
		if block.Type == "CERTIFICATE" {
			return block.Bytes, data
		}
	}
}
