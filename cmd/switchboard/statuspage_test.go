package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// chromium returns the path of Debian's chromium, installing it with
// apt-get when it is missing and this process may (root). Without it the
// test skips, except under CI=true, where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		t.Log("chromium is missing: apt-get install chromium")
		cmd := exec.Command("sh", "-c", "apt-get update -qq && apt-get install -y -qq chromium")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("apt-get: %v\n%s", err, out)
		}
		if p, err := exec.LookPath("chromium"); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed and could not be (Debian package chromium)")
	}
	t.Skip("chromium is not installed (Debian package chromium; .ci/run installs it)")
	return ""
}

// The status page in a real browser (headless Chromium) while messages
// flow: it asks for the admin token once, shows every bind with its
// state, and its counters and charts move. Its screenshot is what
// docs/img/status.png shows (the README's picture); the test writes it
// there only with SWITCHBOARD_UPDATE_SCREENSHOT=1, so a test run leaves
// the checkout as it found it.
func TestStatusPageInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	browser := chromium(t)
	sandbox, eu, backup := testSim(t, smsc.Config{ReceiptDelay: smsc.Delay{Min: 20 * time.Millisecond, Max: 300 * time.Millisecond}}),
		testSim(t, smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 30 * time.Millisecond, Max: 120 * time.Millisecond}}}),
		testSim(t, smsc.Config{})
	hooks := startHookServer(t, func(w http.ResponseWriter) {
		if rand.IntN(50) == 0 {
			w.WriteHeader(503) // a receiver that fails now and then: the success rate is not flat
		}
	})
	yaml := fmt.Sprintf(`
node: {name: node-1, admin_token: %q}
carriers:%s%s%s
  - {name: eu, host: %q, system_id: gw, password: pw, binds: 1, tps: 15, enquire_link: 200ms, reconnect_min: 10ms, reconnect_max: 100ms}
routes:
  - {prefix: "", carriers: [sandbox, backup]}
  - {prefix: "+49", carriers: [eu]}
keys:
  - {id: shop, secret: %q, rate: 100000, burst: 100000, callback_url: %q}
webhooks: {allow_private_networks: true, retry_min: 100ms, retry_max: 1s}
`, testAdminToken, carrierYAML("sandbox", sandbox.Addr(), 2), carrierYAML("backup", backup.Addr(), 1), "", eu.Addr(), testSecret, hooks)
	g, _ := startTestGateway(t, yaml)
	if r := adminCall(t, g, "POST", "/admin/v1/carriers/backup/suspend", ""); r.status != 200 {
		t.Fatalf("suspend: %d %v", r.status, r.body)
	}

	// Messages flow for the whole test: about 60 a second, a third of
	// them to the TPS-limited carrier, whose queue grows.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for s := range 3 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(30+rand.IntN(40)) * time.Millisecond):
				}
				to := fmt.Sprintf("+4477009%05d", n%97)
				if s == 2 {
					to = fmt.Sprintf("+4915112%05d", n%97)
				}
				send(t, g, to, "status page")
			}
		})
	}
	// A few seconds of history for the charts.
	time.Sleep(4 * time.Second)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1360, 900))...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	page := "http://" + g.ops.adminLn.Addr().String() + "/"
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: %v; the page shows:\n%s", what, err, html)
		}
	}
	number := func(sel string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.querySelector(`+"`"+sel+"`"+`).textContent.replace(/\D/g, ""))`))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}

	// The token, once.
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.ID("signin"))); err != nil {
		t.Fatal(err)
	}
	poll("a wrong token is refused", `document.getElementById("login-msg").textContent.includes("admin token")`)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("token"), testAdminToken), chromedp.Click(chromedp.ID("signin"))); err != nil {
		t.Fatal(err)
	}
	poll("the token to be accepted", `document.getElementById("login").classList.contains("hidden") && document.getElementById("node").textContent === "node-1"`)

	// Bind states: sandbox's two bound, eu's bound, backup's suspended.
	poll("bound binds", `document.querySelectorAll('tr.bind[data-carrier="sandbox"][data-state="bound"]').length === 2 &&
		document.querySelectorAll('tr.bind[data-carrier="eu"][data-state="bound"]').length === 1`)
	poll("the suspended bind", `document.querySelectorAll('tr.bind[data-carrier="backup"][data-state="suspended"]').length === 1`)

	// The counters move, and the four key numbers have values.
	submitted, receipts := number("#count-submitted .n"), number("#count-receipts .n")
	poll("submitted to move", fmt.Sprintf(`Number(document.querySelector("#count-submitted .n").textContent.replace(/\D/g, "")) > %d`, submitted))
	poll("receipts to move", fmt.Sprintf(`Number(document.querySelector("#count-receipts .n").textContent.replace(/\D/g, "")) > %d`, receipts))
	for _, v := range []string{"queue_lag", "api_p99_ms", "carrier_p99_ms", "webhook_success"} {
		poll(v+" to have a value", `document.getElementById("v-`+v+`").textContent !== "–"`)
	}
	poll("queue lag above 0 (eu is TPS-limited)", `Number(document.getElementById("v-queue_lag").textContent.replace(/\D/g, "")) > 0`)

	// Reloaded, the page does not ask again.
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	poll("the dashboard without a second login", `!document.getElementById("dash").classList.contains("hidden") &&
		document.getElementById("login").classList.contains("hidden") && document.querySelectorAll("tr.bind").length === 4`)
	time.Sleep(1500 * time.Millisecond) // two more samples on the charts

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 500 {
		t.Fatalf("screenshot is %v", b)
	}
	dst := filepath.Join(t.TempDir(), "status.png")
	if os.Getenv("SWITCHBOARD_UPDATE_SCREENSHOT") == "1" {
		dst = "../../docs/img/status.png"
	}
	if err := os.WriteFile(dst, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mustRead(t, "../../README.md"), "docs/img/status.png") {
		t.Error("the README does not show docs/img/status.png")
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
