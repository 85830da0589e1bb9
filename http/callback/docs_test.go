package callback

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const webhooksDoc = "../../docs/webhooks.md"

// docBlocks returns the fenced code blocks of docs/webhooks.md in the given
// language, in order.
func docBlocks(t *testing.T, lang string) []string {
	t.Helper()
	doc, err := os.ReadFile(webhooksDoc)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?ms)^```"+regexp.QuoteMeta(lang)+"\n(.*?)^```$").FindAllSubmatch(doc, -1) {
		blocks = append(blocks, string(m[1]))
	}
	if len(blocks) == 0 {
		t.Fatalf("%s has no %s block", webhooksDoc, lang)
	}
	return blocks
}

// TestDocsExampleSignature: the example request in the docs is signed as
// the docs say, so customers can test their code against it.
func TestDocsExampleSignature(t *testing.T) {
	example := docBlocks(t, "http")[0]
	head, body, ok := strings.Cut(example, "\n\n")
	if !ok {
		t.Fatal("the example request has no body")
	}
	body = strings.TrimSuffix(body, "\n")
	sig := regexp.MustCompile(`(?m)^Switchboard-Signature: (.*)$`).FindStringSubmatch(head)
	length := regexp.MustCompile(`(?m)^Content-Length: (\d+)$`).FindStringSubmatch(head)
	if sig == nil || length == nil {
		t.Fatalf("the example request lacks a signature or length:\n%s", head)
	}
	if length[1] != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %s, the body has %d bytes", length[1], len(body))
	}
	signedAt := time.Unix(1718029831, 0)
	if err := Verify(sig[1], "whsec_example", []byte(body), 0, signedAt); err != nil {
		t.Errorf("the example signature does not verify with whsec_example: %v", err)
	}
	if got := Sign("whsec_example", signedAt, []byte(body)); got != sig[1] {
		t.Errorf("the example signature is %s, Sign gives %s", sig[1], got)
	}
	// Both example bodies start with event_id and attempt.
	for _, b := range append([]string{body}, docBlocks(t, "json")...) {
		if !strings.HasPrefix(b, `{"event_id":"evt_`) || !strings.Contains(b, `","attempt":`) {
			t.Errorf("example body does not start with event_id, attempt: %s", b)
		}
	}
}

// snippetCase is a request a documented verifier must accept or refuse.
type snippetCase struct {
	name   string
	header string
	body   []byte
	want   bool
}

func snippetCases() []snippetCase {
	now := time.Now()
	body := []byte("{\"event_id\":\"evt_1\",\"attempt\":1,\"text\":\"caf\u00e9 \u20ac\"}")
	good := Sign(testSecret, now, body)
	ts, _, _ := strings.Cut(good, ",")
	other := strings.TrimPrefix(Sign("old secret", now, body), ts+",")
	return []snippetCase{
		{"genuine", good, body, true},
		{"genuine, spaced, with another v1 and an unknown key", ts + " , " + other + ", v0=abc , " + strings.TrimPrefix(good, ts+","), body, true},
		{"tampered body", good, append(bytes.Clone(body), ' '), false},
		{"wrong secret", Sign("wrong", now, body), body, false},
		{"stale", Sign(testSecret, now.Add(-10*time.Minute), body), body, false},
		{"future", Sign(testSecret, now.Add(10*time.Minute), body), body, false},
		{"no signature", ts, body, false},
		{"garbage", "nonsense", body, false},
		{"empty", "", body, false},
		{"bad hex", ts + ",v1=zz", body, false},
		{"non-ASCII", ts + ",v1=éé", body, false},
	}
}

// runSnippet runs a documented verifier once per case; run gets the
// header, body and secret in the environment (SIG, BODY_B64, SECRET) and
// must print true or false.
func runSnippet(t *testing.T, cmd func() *exec.Cmd) {
	t.Helper()
	for _, tc := range snippetCases() {
		c := cmd()
		c.Env = append(os.Environ(), "SIG="+tc.header, "BODY_B64="+base64.StdEncoding.EncodeToString(tc.body), "SECRET="+testSecret)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != map[bool]string{true: "true", false: "false"}[tc.want] {
			t.Errorf("%s: the snippet says %s, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDocsNodeSnippet runs the Node.js verifier of docs/webhooks.md.
func TestDocsNodeSnippet(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	snippet := docBlocks(t, "js")[0]
	program := snippet + `
const ok = verifySignature(process.env.SIG, Buffer.from(process.env.BODY_B64, "base64"), process.env.SECRET);
console.log(ok === true ? "true" : ok === false ? "false" : "not a boolean: " + ok);
`
	runSnippet(t, func() *exec.Cmd { return exec.Command(node, "-e", program) })
}

// TestDocsPythonSnippet runs the Python verifier of docs/webhooks.md.
func TestDocsPythonSnippet(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	program := docBlocks(t, "python")[0] + `
import base64, os
ok = verify_signature(os.environ["SIG"], base64.b64decode(os.environ["BODY_B64"]), os.environ["SECRET"])
print("true" if ok is True else "false" if ok is False else "not a boolean: %r" % ok)
`
	runSnippet(t, func() *exec.Cmd { return exec.Command(python, "-c", program) })
}

// TestDocsGoSnippet builds and runs the standard-library Go verifier of
// docs/webhooks.md.
func TestDocsGoSnippet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	var snippet string
	for _, b := range docBlocks(t, "go") {
		if strings.Contains(b, "func verifySignature(") {
			snippet = b
		}
	}
	if snippet == "" {
		t.Fatal("no Go verifySignature in the docs")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":    "module snippet\n\ngo 1.22\n",
		"verify.go": "package main\n\n" + snippet,
		"main.go": `package main

import (
	"encoding/base64"
	"fmt"
	"os"
)

func main() {
	body, _ := base64.StdEncoding.DecodeString(os.Getenv("BODY_B64"))
	fmt.Println(verifySignature(os.Getenv("SIG"), body, os.Getenv("SECRET")))
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "snippet")
	build := exec.Command(goBin, "build", "-o", exe, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the Go snippet does not build: %v\n%s", err, out)
	}
	runSnippet(t, func() *exec.Cmd { return exec.Command(exe) })
}
