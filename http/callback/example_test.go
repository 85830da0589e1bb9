package callback_test

import (
	"fmt"
	"time"

	"github.com/switchboard-sms/switchboard/http/callback"
)

func ExampleSign() {
	body := []byte(`{"event_id":"evt_1","attempt":1}`)
	fmt.Println(callback.Sign("whsec_example", time.Unix(1718029831, 0), body))
	// Output: t=1718029831,v1=870b60618d4177a8c20937f300dc38e0b0ee5a1c1fa33f1d0a83c2182fa70534
}

func ExampleVerify() {
	body := []byte(`{"event_id":"evt_1","attempt":1}`)
	signedAt := time.Unix(1718029831, 0)
	header := callback.Sign("whsec_example", signedAt, body)

	fmt.Println(callback.Verify(header, "whsec_example", body, 5*time.Minute, signedAt.Add(time.Minute)))
	fmt.Println(callback.Verify(header, "whsec_example", []byte(`{}`), 5*time.Minute, signedAt))
	fmt.Println(callback.Verify(header, "whsec_example", body, 5*time.Minute, signedAt.Add(time.Hour)))
	// Output:
	// <nil>
	// callback: signature does not match
	// callback: signature timestamp outside the tolerance
}

func ExampleCheckURL() {
	for _, u := range []string{
		"https://hooks.example.com/sms",
		"http://0x7f.1:8080/",
		"http://[::ffff:169.254.169.254]/",
		"http://1.2.3.4.5/",
	} {
		fmt.Println(callback.CheckURL(u, false))
	}
	// Output:
	// <nil>
	// switchboard error: code=invalid message=callback URL host 0x7f.1 (127.0.0.1) is a loopback address; set webhooks.allow_private_networks to allow it
	// switchboard error: code=invalid message=callback URL host ::ffff:169.254.169.254 is a link-local address; set webhooks.allow_private_networks to allow it
	// switchboard error: code=invalid message=callback URL host 1.2.3.4.5 is numeric but not a valid IPv4 address
}
