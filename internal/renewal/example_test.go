package renewal_test

import (
	"fmt"
	"math/big"
	"time"

	"github.com/certkeeper/certkeeper/internal/renewal"
)

func ExampleDue() {
	notBefore := time.Date(2026, 5, 13, 7, 41, 23, 0, time.UTC)
	for i, life := range []time.Duration{time.Minute, 160 * time.Hour, 45 * 24 * time.Hour, 90 * 24 * time.Hour} {
		c := renewal.Cert{
			NotBefore: notBefore,
			NotAfter:  notBefore.Add(life),
			Serial:    big.NewInt(int64(1000 + i)), // leaf.SerialNumber: a stable due time
		}
		due := renewal.Due(c, notBefore, nil)
		fmt.Printf("%v certificate: renew after %.1f%% of its lifetime\n", life, 100*float64(due.Sub(notBefore))/float64(life))
	}
	// Output:
	// 1m0s certificate: renew after 46.3% of its lifetime
	// 160h0m0s certificate: renew after 46.1% of its lifetime
	// 1080h0m0s certificate: renew after 68.1% of its lifetime
	// 2160h0m0s certificate: renew after 66.6% of its lifetime
}

func ExampleScheduler() {
	ran := make(chan string)
	s := renewal.New(func(key string) { ran <- key }, 1)
	defer s.Close()

	now := time.Now()
	s.Schedule("b.test", now.Add(20*time.Millisecond))
	s.Schedule("a.test", now.Add(10*time.Millisecond))
	s.Schedule("c.test", now.Add(time.Hour))
	s.Remove("c.test")
	fmt.Println(<-ran)
	fmt.Println(<-ran)
	fmt.Println("pending:", s.Len())
	// Output:
	// a.test
	// b.test
	// pending: 0
}
