package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	sbhttp "github.com/switchboard-sms/switchboard/http"
)

// The catalog as the admin API sees it (http.Catalog). Request bodies are
// JSON in the shape of cluster.yaml's items (a key, a carrier, a route),
// read by the same checks as the file, so a setting means the same in
// both and is refused with the same words.

// decodeItem reads a JSON body into item, which holds the values to start
// from: only the settings the body names change. fixed are settings the
// body may not set.
func decodeItem(body []byte, item any, what string, fixed ...string) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return switchboard.Errorf(switchboard.EINVALID, "The request needs a JSON object of %s settings.", what)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return switchboard.Errorf(switchboard.EINVALID, "The body is not JSON: %s.", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	n := &doc
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return switchboard.Errorf(switchboard.EINVALID, "The body must be a JSON object of %s settings.", what)
	}
	var problems []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(fixed, n.Content[i].Value) {
			problems = append(problems, fmt.Errorf("%s cannot be set here", n.Content[i].Value))
		}
	}
	checkNode(n, reflect.TypeOf(item).Elem(), "", &problems)
	if len(problems) == 0 {
		strictJSON(n, reflect.TypeOf(item).Elem(), &problems)
	}
	if len(problems) == 0 {
		if err := n.Decode(item); err != nil {
			problems = append(problems, errors.New(strings.TrimPrefix(err.Error(), "yaml: ")))
		}
	}
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = lineRE.ReplaceAllString(p.Error(), "")
		}
		return switchboard.Errorf(switchboard.EINVALID, "%s", strings.Join(msgs, "; "))
	}
	return nil
}

// strictJSON holds a JSON body to JSON's types, which YAML's reading
// would stretch: a number or false is no string, null no value.
func strictJSON(n *yaml.Node, t reflect.Type, problems *[]error) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, v := n.Content[i].Value, n.Content[i+1]
		f, ok := fieldByName(t, name)
		if !ok {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		var want []string
		switch {
		case ft == durationType || ft.Kind() == reflect.String:
			want = []string{"!!str"}
		case ft.Kind() == reflect.Bool:
			want = []string{"!!bool"}
		case ft.Kind() == reflect.Int:
			want = []string{"!!int"}
		case ft.Kind() == reflect.Float64:
			want = []string{"!!int", "!!float"}
		case ft.Kind() == reflect.Slice:
			if v.Kind != yaml.SequenceNode {
				*problems = append(*problems, fmt.Errorf("%s: want a list of strings", name))
				continue
			}
			for j, item := range v.Content {
				if item.ShortTag() != "!!str" {
					*problems = append(*problems, fmt.Errorf("%s[%d]: want a string, got %s", name, j, jsonKind(item)))
				}
			}
			continue
		}
		if !slices.Contains(want, v.ShortTag()) {
			*problems = append(*problems, fmt.Errorf("%s: want %s, got %s", name, wantOf(ft), jsonKind(v)))
		}
	}
}

// jsonKind names a JSON value's kind.
func jsonKind(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	}
	return gotOf(n)
}

// lineRE is the line number the file's checks put first; a request body
// is one line.
var lineRE = regexp.MustCompile(`^line \d+: `)

// itemMap is an item's settings by their names in cluster.yaml, for JSON.
func itemMap(item any, omit ...string) map[string]any {
	v := reflect.ValueOf(item)
	out := map[string]any{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := yamlName(f)
		if name == "" || slices.Contains(omit, name) {
			continue
		}
		val := v.Field(i).Interface()
		switch x := val.(type) {
		case Duration:
			val = x.String()
		case []string:
			if x == nil {
				val = []string{}
			}
		}
		out[name] = val
	}
	return out
}

func notFound(what, name string) error {
	return switchboard.Errorf(switchboard.ENOTFOUND, "No %s %q.", what, name)
}

func managed(what, name string) error {
	return switchboard.Errorf(switchboard.EMANAGED, "%s %q is defined in cluster.yaml, which owns it: change it there and send SIGHUP.", what, name)
}

// ---- keys ----

// keyView is a key as the admin API shows it: never its secret.
func (c *catalog) keyView(kc KeyConfig, s *storedKey) map[string]any {
	v := itemMap(kc, "secret", "secret_sha256", "webhook_secret")
	v["source"] = "file"
	v["revoked"] = false
	if s != nil {
		v["source"] = "api"
		v["created_at"] = s.CreatedAt.UTC()
		v["revoked"] = s.revoked()
		if s.revoked() {
			v["revoked_at"] = s.RevokedAt.UTC()
		}
		if now := c.now(); s.PreviousSecretSHA256 != "" && now.Before(s.PreviousSecretUntil) {
			v["previous_secret_valid_until"] = s.PreviousSecretUntil.UTC()
		}
		if now := c.now(); s.PreviousWebhookSecret != "" && now.Before(s.PreviousWebhookUntil) {
			v["previous_webhook_secret_valid_until"] = s.PreviousWebhookUntil.UTC()
		}
	}
	return v
}

// findKey returns a key: from the file (stored nil) or the store.
func (c *catalog) findKey(id string) (KeyConfig, *storedKey, int, bool) {
	for _, k := range c.file.Keys {
		if k.ID == id {
			return k, nil, -1, true
		}
	}
	for i, k := range c.items.keys {
		if k.Key.ID == id {
			return k.Key, k, i, true
		}
	}
	return KeyConfig{}, nil, -1, false
}

func (c *catalog) ListKeys(context.Context) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	keys := []map[string]any{}
	for _, k := range c.file.Keys {
		keys = append(keys, c.keyView(k, nil))
	}
	for _, k := range c.items.keys {
		keys = append(keys, c.keyView(k.Key, k))
	}
	return map[string]any{"keys": keys}, nil
}

func (c *catalog) GetKey(_ context.Context, id string) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	kc, s, _, ok := c.findKey(id)
	if !ok {
		return nil, notFound("key", id)
	}
	return c.keyView(kc, s), nil
}

// CreateKey makes a key with a generated secret and webhook secret, shown
// in the answer only.
func (c *catalog) CreateKey(ctx context.Context, body []byte) (any, error) {
	var kc KeyConfig
	if err := decodeItem(body, &kc, "key", "secret", "secret_sha256", "webhook_secret"); err != nil {
		return nil, err
	}
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if kc.ID == "" {
		return nil, switchboard.Errorf(switchboard.EINVALID, "id: is empty")
	}
	if _, _, _, ok := c.findKey(kc.ID); ok {
		return nil, switchboard.Errorf(switchboard.ECONFLICT, "Key %q exists already (key ids are never reused, revoked ones included).", kc.ID)
	}
	secret, webhookSecret := newSecret("sk_"), newSecret("whsec_")
	kc.SecretSHA256, kc.WebhookSecret = sha256Hex(secret), webhookSecret
	s := &storedKey{Key: kc, CreatedAt: c.now().UTC()}
	items := c.items
	items.keys = append(slices.Clone(items.keys), s)
	if err := c.fill(&items); err != nil {
		return nil, err
	}
	if err := c.commit(ctx, items, map[string]any{settingKey + kc.ID: s}); err != nil {
		return nil, err
	}
	_, s, _, _ = c.findKey(kc.ID)
	return map[string]any{"key": c.keyView(s.Key, s), "secret": secret, "webhook_secret": webhookSecret}, nil
}

// changeKey applies change to a copy of an API key and commits it.
func (c *catalog) changeKey(ctx context.Context, id string, change func(s *storedKey) error) (*storedKey, error) {
	_, s, i, ok := c.findKey(id)
	switch {
	case !ok:
		return nil, notFound("key", id)
	case s == nil:
		return nil, managed("Key", id)
	case s.revoked():
		return nil, switchboard.Errorf(switchboard.ECONFLICT, "Key %q is revoked.", id)
	}
	next := *s
	next.Key.Numbers = slices.Clone(s.Key.Numbers)
	next.Key.CallbackStatuses = slices.Clone(s.Key.CallbackStatuses)
	if err := change(&next); err != nil {
		return nil, err
	}
	items := c.items
	items.keys = slices.Clone(items.keys)
	items.keys[i] = &next
	if err := c.fill(&items); err != nil {
		return nil, err
	}
	if err := c.commit(ctx, items, map[string]any{settingKey + id: &next}); err != nil {
		return nil, err
	}
	return &next, nil
}

func (c *catalog) UpdateKey(ctx context.Context, id string, body []byte) (any, error) {
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	s, err := c.changeKey(ctx, id, func(s *storedKey) error {
		return decodeItem(body, &s.Key, "key", "id", "secret", "secret_sha256", "webhook_secret")
	})
	if err != nil {
		return nil, err
	}
	return c.keyView(s.Key, s), nil
}

// RevokeKey stops the key authenticating, on every node within a second.
// Its accepted messages are still sent.
func (c *catalog) RevokeKey(ctx context.Context, id string) (any, error) {
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if _, s, _, ok := c.findKey(id); ok && s != nil && s.revoked() {
		return c.keyView(s.Key, s), nil // revoking twice changes nothing
	}
	s, err := c.changeKey(ctx, id, func(s *storedKey) error {
		s.RevokedAt = c.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.keyView(s.Key, s), nil
}

// overlap reads a rotation's {"overlap": "24h"}: how long the old secret
// stays valid (default 24h, at most 30 days; 0 ends it at once).
func overlap(body []byte) (time.Duration, error) {
	var o struct {
		Overlap *Duration `yaml:"overlap"`
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeItem(body, &o, "rotation"); err != nil {
			return 0, err
		}
	}
	if o.Overlap == nil {
		return defaultOverlap, nil
	}
	if d := o.Overlap.Std(); d < 0 || d > maxOverlap {
		return 0, switchboard.Errorf(switchboard.EINVALID, "overlap: %v is not between 0s and %v", d, maxOverlap)
	}
	return o.Overlap.Std(), nil
}

const (
	defaultOverlap = 24 * time.Hour
	maxOverlap     = 30 * 24 * time.Hour
)

// RotateSecret gives the key a new secret; the old one keeps working
// until the overlap ends.
func (c *catalog) RotateSecret(ctx context.Context, id string, body []byte) (any, error) {
	d, err := overlap(body)
	if err != nil {
		return nil, err
	}
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	secret := newSecret("sk_")
	s, err := c.changeKey(ctx, id, func(s *storedKey) error {
		s.PreviousSecretSHA256, s.PreviousSecretUntil = s.Key.SecretSHA256, c.now().Add(d).UTC()
		s.Key.SecretSHA256 = sha256Hex(secret)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"key": c.keyView(s.Key, s), "secret": secret, "previous_secret_valid_until": s.PreviousSecretUntil}, nil
}

// RotateWebhookSecret gives the key a new webhook secret; until the
// overlap ends, callbacks carry signatures with both.
func (c *catalog) RotateWebhookSecret(ctx context.Context, id string, body []byte) (any, error) {
	d, err := overlap(body)
	if err != nil {
		return nil, err
	}
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	secret := newSecret("whsec_")
	s, err := c.changeKey(ctx, id, func(s *storedKey) error {
		s.PreviousWebhookSecret, s.PreviousWebhookUntil = s.Key.WebhookSecret, c.now().Add(d).UTC()
		s.Key.WebhookSecret = secret
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"key": c.keyView(s.Key, s), "webhook_secret": secret,
		"previous_webhook_secret_valid_until": s.PreviousWebhookUntil}, nil
}

// WebhookSecret reads the secret that signs the key's callbacks now (for
// a file key without one, the secret generated for it).
func (c *catalog) WebhookSecret(_ context.Context, id string) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	k, ok := c.ring.Key(id)
	if !ok {
		return nil, notFound("key", id)
	}
	out := map[string]any{"id": id, "webhook_secret": k.WebhookSecret}
	if secrets := k.WebhookSecrets(c.now()); len(secrets) > 1 {
		out["previous_webhook_secret_valid_until"] = k.PreviousWebhookUntil.UTC()
	}
	return out, nil
}

// ---- carriers ----

func (c *catalog) carrierView(cc CarrierConfig, source string) map[string]any {
	v := itemMap(cc, "password")
	v["source"] = source
	binds := []sbhttp.BindJSON{}
	suspended := false
	if e := c.engine(); e != nil {
		for _, cs := range e.Carriers() {
			if cs.Name == cc.Name {
				binds, suspended = sbhttp.Binds(cs.Binds), cs.Suspended
			}
		}
	}
	v["suspended"], v["bind_states"] = suspended, binds
	return v
}

func (c *catalog) findCarrier(name string) (CarrierConfig, bool, int, bool) {
	for _, cc := range c.file.Carriers {
		if cc.Name == name {
			return cc, true, -1, true
		}
	}
	for i, cc := range c.items.carriers {
		if cc.Name == name {
			return cc, false, i, true
		}
	}
	return CarrierConfig{}, false, -1, false
}

func (c *catalog) ListCarriers(context.Context) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	out := []map[string]any{}
	for _, cc := range c.file.Carriers {
		out = append(out, c.carrierView(cc, "file"))
	}
	for _, cc := range c.items.carriers {
		out = append(out, c.carrierView(cc, "api"))
	}
	return map[string]any{"carriers": out}, nil
}

func (c *catalog) GetCarrier(_ context.Context, name string) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	cc, file, _, ok := c.findCarrier(name)
	if !ok {
		return nil, notFound("carrier", name)
	}
	return c.carrierView(cc, source(file)), nil
}

func source(file bool) string {
	if file {
		return "file"
	}
	return "api"
}

// lockCarrierChange is lockFresh for a change of carriers, which in a
// cluster is refused before anything is stored: the engine would refuse
// it after, leaving a stored carrier no node runs.
func (c *catalog) lockCarrierChange(ctx context.Context) error {
	if err := c.lockFresh(ctx); err != nil {
		return err
	}
	if c.file.Cluster.Enabled {
		c.mu.Unlock()
		return actors.ErrFleetCarriers
	}
	return nil
}

// AddCarrier starts a carrier's binds; a route must name it before it
// gets traffic.
func (c *catalog) AddCarrier(ctx context.Context, body []byte) (any, error) {
	var cc CarrierConfig
	if err := decodeItem(body, &cc, "carrier", "simulator"); err != nil {
		return nil, err
	}
	if err := c.lockCarrierChange(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if cc.Name == "" {
		return nil, switchboard.Errorf(switchboard.EINVALID, "name: is empty")
	}
	if _, _, _, ok := c.findCarrier(cc.Name); ok {
		return nil, switchboard.Errorf(switchboard.ECONFLICT, "Carrier %q exists already.", cc.Name)
	}
	items := c.items
	items.carriers = append(slices.Clone(items.carriers), cc)
	if err := c.commitCarrier(ctx, items, cc.Name); err != nil {
		return nil, err
	}
	cc, _, _, _ = c.findCarrier(cc.Name)
	return c.carrierView(cc, "api"), nil
}

// commitCarrier commits items, storing the carrier name as it stands in
// them (with its defaults filled).
func (c *catalog) commitCarrier(ctx context.Context, items storedItems, name string) error {
	if err := c.fill(&items); err != nil {
		return err
	}
	for _, cc := range items.carriers {
		if cc.Name == name {
			return c.commit(ctx, items, map[string]any{settingCarrier + name: cc})
		}
	}
	return fmt.Errorf("carrier %s vanished", name)
}

// fill validates items with the file's and gives their keys and carriers
// the defaults they take, so the store keeps what runs. A revoked key
// stays as it is.
func (c *catalog) fill(items *storedItems) error {
	m, err := c.merge(*items)
	if err != nil {
		return invalid(err, len(c.file.Keys), len(c.file.Carriers), len(c.file.Routes))
	}
	for i, k := range items.keys {
		if !k.revoked() {
			k.Key = m.Keys[len(c.file.Keys)+i]
		}
	}
	items.carriers = slices.Clone(items.carriers)
	for i := range items.carriers {
		items.carriers[i] = m.Carriers[len(c.file.Carriers)+i]
	}
	return nil
}

// UpdateCarrier changes an API carrier's settings; its binds restart with
// them.
func (c *catalog) UpdateCarrier(ctx context.Context, name string, body []byte) (any, error) {
	if err := c.lockCarrierChange(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	cc, file, i, ok := c.findCarrier(name)
	switch {
	case !ok:
		return nil, notFound("carrier", name)
	case file:
		return nil, managed("Carrier", name)
	}
	cc.RetriableStatuses, cc.PermanentStatuses = slices.Clone(cc.RetriableStatuses), slices.Clone(cc.PermanentStatuses)
	if err := decodeItem(body, &cc, "carrier", "name", "simulator"); err != nil {
		return nil, err
	}
	items := c.items
	items.carriers = slices.Clone(items.carriers)
	items.carriers[i] = cc
	if err := c.commitCarrier(ctx, items, name); err != nil {
		return nil, err
	}
	cc, _, _, _ = c.findCarrier(name)
	return c.carrierView(cc, "api"), nil
}

// RemoveCarrier stops an API carrier's binds; messages they held fail
// over or wait. A carrier a route names cannot be removed.
func (c *catalog) RemoveCarrier(ctx context.Context, name string) error {
	if err := c.lockCarrierChange(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	_, file, i, ok := c.findCarrier(name)
	switch {
	case !ok:
		return notFound("carrier", name)
	case file:
		return managed("Carrier", name)
	}
	for _, r := range append(slices.Clone(c.file.Routes), c.items.routes...) {
		if slices.Contains(r.Carriers, name) {
			return switchboard.Errorf(switchboard.ECONFLICT, "Route %q sends to carrier %q; change the route first.", r.Prefix, name)
		}
	}
	items := c.items
	items.carriers = slices.Delete(slices.Clone(items.carriers), i, i+1)
	return c.commit(ctx, items, nil, settingCarrier+name)
}

func (c *catalog) SuspendCarrier(ctx context.Context, name string) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	cc, file, _, ok := c.findCarrier(name)
	if !ok {
		return nil, notFound("carrier", name)
	}
	if err := c.engine().SuspendCarrier(ctx, name); err != nil {
		return nil, err
	}
	return c.carrierView(cc, source(file)), nil
}

func (c *catalog) ResumeCarrier(_ context.Context, name string) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	cc, file, _, ok := c.findCarrier(name)
	if !ok {
		return nil, notFound("carrier", name)
	}
	if err := c.engine().ResumeCarrier(name); err != nil {
		return nil, err
	}
	return c.carrierView(cc, source(file)), nil
}

// ---- routes ----

func routeView(r RouteConfig, source string) map[string]any {
	v := itemMap(r)
	v["id"], v["source"] = routeID(r.Prefix), source
	return v
}

func (c *catalog) findRoute(id string) (RouteConfig, bool, int, bool) {
	id = routeID(id)
	for _, r := range c.file.Routes {
		if routeID(r.Prefix) == id {
			return r, true, -1, true
		}
	}
	for i, r := range c.items.routes {
		if routeID(r.Prefix) == id {
			return r, false, i, true
		}
	}
	return RouteConfig{}, false, -1, false
}

func (c *catalog) ListRoutes(context.Context) (any, error) {
	if err := c.lockLoaded(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	out := []map[string]any{}
	for _, r := range c.file.Routes {
		out = append(out, routeView(r, "file"))
	}
	for _, r := range c.items.routes {
		out = append(out, routeView(r, "api"))
	}
	return map[string]any{"routes": out}, nil
}

func (c *catalog) AddRoute(ctx context.Context, body []byte) (any, error) {
	var r RouteConfig
	if err := decodeItem(body, &r, "route"); err != nil {
		return nil, err
	}
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if _, _, _, ok := c.findRoute(r.Prefix); ok {
		return nil, switchboard.Errorf(switchboard.ECONFLICT, "A route for prefix %q exists already.", r.Prefix)
	}
	items := c.items
	items.routes = append(slices.Clone(items.routes), r)
	if err := c.commit(ctx, items, map[string]any{settingRoute + routeID(r.Prefix): r}); err != nil {
		return nil, err
	}
	return routeView(r, "api"), nil
}

func (c *catalog) UpdateRoute(ctx context.Context, id string, body []byte) (any, error) {
	if err := c.lockFresh(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	r, file, i, ok := c.findRoute(id)
	switch {
	case !ok:
		return nil, notFound("route", id)
	case file:
		return nil, managed("Route", r.Prefix)
	}
	r.Carriers = slices.Clone(r.Carriers)
	if err := decodeItem(body, &r, "route", "prefix"); err != nil {
		return nil, err
	}
	items := c.items
	items.routes = slices.Clone(items.routes)
	items.routes[i] = r
	if err := c.commit(ctx, items, map[string]any{settingRoute + routeID(r.Prefix): r}); err != nil {
		return nil, err
	}
	return routeView(r, "api"), nil
}

func (c *catalog) RemoveRoute(ctx context.Context, id string) error {
	if err := c.lockFresh(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	r, file, i, ok := c.findRoute(id)
	switch {
	case !ok:
		return notFound("route", id)
	case file:
		return managed("Route", r.Prefix)
	}
	items := c.items
	items.routes = slices.Delete(slices.Clone(items.routes), i, i+1)
	return c.commit(ctx, items, nil, settingRoute+routeID(r.Prefix))
}
