package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
)

// The catalog is the node's keys, carriers and routes: those cluster.yaml
// defines (source: file; the file owns them, and the admin API may not
// change them: managed_by_config) and those the admin API created (source:
// api), kept in the store's settings so they survive restarts and are
// shared by every node on one store. The two together are checked as one
// configuration, by the same Validate as the file, before anything
// changes; then the key ring, the engine's carriers and its routes are
// made to match, live. A change made through another node is read from
// the store within a second (poll), so a revoked key stops working
// everywhere within that time.

// Setting names of what the admin API creates.
const (
	settingKey     = "admin/key/"
	settingCarrier = "admin/carrier/"
	settingRoute   = "admin/route/"
	settingsAdmin  = "admin/"
)

// storedKey is an API key as the store keeps it: its settings with the
// SHA-256 of its secret (never the secret), and what rotations and
// revocation add.
type storedKey struct {
	Key                   KeyConfig `yaml:"key"`
	CreatedAt             time.Time `yaml:"created_at"`
	PreviousSecretSHA256  string    `yaml:"previous_secret_sha256,omitempty"`
	PreviousSecretUntil   time.Time `yaml:"previous_secret_until,omitempty"`
	PreviousWebhookSecret string    `yaml:"previous_webhook_secret,omitempty"`
	PreviousWebhookUntil  time.Time `yaml:"previous_webhook_until,omitempty"`
	RevokedAt             time.Time `yaml:"revoked_at,omitempty"`
}

func (k *storedKey) revoked() bool { return !k.RevokedAt.IsZero() }

// storedItems are the admin API's keys, carriers and routes, each in name
// order (the store lists them so).
type storedItems struct {
	keys     []*storedKey
	carriers []CarrierConfig
	routes   []RouteConfig
}

// routeID names a route in the admin API and the store: its prefix
// without "+", or "default" for the empty prefix.
func routeID(prefix string) string {
	if p := strings.TrimPrefix(prefix, "+"); p != "" {
		return p
	}
	return "default"
}

type catalog struct {
	mu    sync.Mutex
	file  *Config // the file's configuration in force
	items storedItems
	// seen is the store's admin settings as last read, to tell whether
	// another node changed them.
	seen string

	store switchboard.Settings
	// current returns the node's engine (a clustered node starts a new
	// one when it rejoins); nil until attach.
	current func() *actors.Engine
	ring    *switchboard.KeyRing
	log     zerolog.Logger
	now     func() time.Time
}

// newCatalog returns the catalog of file, with a key ring of the file's
// keys that the HTTP API and every engine of the node share; prepare adds
// the admin API's.
func newCatalog(file *Config, log zerolog.Logger) *catalog {
	keys := make([]*switchboard.Key, len(file.Keys))
	for i, k := range file.Keys {
		key := k.Key()
		keys[i] = &key
	}
	return &catalog{file: file, log: log.With().Str("component", "catalog").Logger(), now: time.Now,
		ring: switchboard.NewKeyRing(keys)}
}

// prepare reads the admin API's items from the store and completes the
// engine's configuration with them, before an engine starts (so the
// pending messages of an API key are resumed like any other's). Items
// the file now contradicts are left out, with an error logged.
func (c *catalog) prepare(ctx context.Context, store switchboard.Store, ecfg *actors.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.store = store
	items, seen, err := c.read(ctx)
	if err != nil {
		return fmt.Errorf("admin items: %w", err)
	}
	m, err := c.mergeLeavingOut(&items)
	if err != nil {
		return fmt.Errorf("admin items: %w", err)
	}
	c.items, c.seen = items, seen
	c.ring.Replace(c.domainKeys(m))
	ecfg.Keys = c.ring
	ecfg.Carriers, ecfg.Routes = engineCarriers(m), engineRoutes(m)
	return nil
}

// mergeLeavingOut merges the stored items with the file, leaving out,
// with an error logged, the last stored item the problems name until the
// rest is valid: the file wins.
func (c *catalog) mergeLeavingOut(items *storedItems) (*Config, error) {
	m, err := c.merge(*items)
	for err != nil {
		dropped := items.dropNamed(err, len(c.file.Keys), len(c.file.Carriers), len(c.file.Routes))
		if dropped == "" {
			return nil, err
		}
		c.log.Error().Err(err).Str("item", dropped).Msg("an item the admin API created conflicts with the configuration; left out until it is fixed")
		m, err = c.merge(*items)
	}
	return m, nil
}

// lockFresh takes c.mu for a change, after applying what other nodes
// wrote to the store since the last poll: a change computed from an older
// view would write back what another node just changed (a revocation,
// say).
func (c *catalog) lockFresh(ctx context.Context) error {
	if err := c.lockLoaded(); err != nil {
		return err
	}
	if err := c.syncLocked(ctx); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("%w: %w", switchboard.Errorf(switchboard.EUNAVAILABLE, "The stored keys, carriers and routes cannot be read; try again."), err)
	}
	return nil
}

// lockLoaded locks the catalog for a read of what it holds, once the node
// runs: before, it knows the file's items alone (until the engine's
// preparation has read the store), and would answer for the admin API's
// as if there were none; and a change could be stored but not applied,
// answered 503 with a new key's secret lost.
func (c *catalog) lockLoaded() error {
	c.mu.Lock()
	if c.store == nil || c.engine() == nil {
		c.mu.Unlock()
		return errStarting()
	}
	return nil
}

// attach is called once the node runs, with how to find its engine.
func (c *catalog) attach(engine func() *actors.Engine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = engine
}

func (c *catalog) engine() *actors.Engine {
	if c.current == nil {
		return nil
	}
	return c.current()
}

// read loads the admin API's items from the store, with the listing they
// came from.
func (c *catalog) read(ctx context.Context) (storedItems, string, error) {
	settings, err := c.store.ListSettings(ctx, settingsAdmin)
	if err != nil {
		return storedItems{}, "", err
	}
	var items storedItems
	var seen strings.Builder
	for _, s := range settings {
		seen.WriteString(s.Name + "\x00" + s.Value + "\x00")
		var err error
		switch {
		case strings.HasPrefix(s.Name, settingKey):
			k := new(storedKey)
			if err = yaml.Unmarshal([]byte(s.Value), k); err == nil {
				items.keys = append(items.keys, k)
			}
		case strings.HasPrefix(s.Name, settingCarrier):
			var cc CarrierConfig
			if err = yaml.Unmarshal([]byte(s.Value), &cc); err == nil {
				items.carriers = append(items.carriers, cc)
			}
		case strings.HasPrefix(s.Name, settingRoute):
			var r RouteConfig
			if err = yaml.Unmarshal([]byte(s.Value), &r); err == nil {
				items.routes = append(items.routes, r)
			}
		}
		if err != nil {
			c.log.Error().Err(err).Str("setting", s.Name).Msg("stored admin item cannot be read; left out")
		}
	}
	return items, seen.String(), nil
}

// dropNamed removes the stored item the first problem of err names (by
// its index in the merged configuration) and returns its setting name;
// "" if no problem names a stored item.
func (it *storedItems) dropNamed(err error, fileKeys, fileCarriers, fileRoutes int) string {
	for _, p := range flattenErrors(err) {
		var i int
		msg := p.Error()
		switch {
		case scanIndex(msg, "keys[", &i) && i >= fileKeys && i-fileKeys < len(it.keys):
			k := it.keys[i-fileKeys]
			it.keys = slices.Delete(it.keys, i-fileKeys, i-fileKeys+1)
			return settingKey + k.Key.ID
		case scanIndex(msg, "carriers[", &i) && i >= fileCarriers && i-fileCarriers < len(it.carriers):
			cc := it.carriers[i-fileCarriers]
			it.carriers = slices.Delete(it.carriers, i-fileCarriers, i-fileCarriers+1)
			return settingCarrier + cc.Name
		case scanIndex(msg, "routes[", &i) && i >= fileRoutes && i-fileRoutes < len(it.routes):
			r := it.routes[i-fileRoutes]
			it.routes = slices.Delete(it.routes, i-fileRoutes, i-fileRoutes+1)
			return settingRoute + routeID(r.Prefix)
		}
	}
	return ""
}

// scanIndex reads the index of a problem's path that starts with list
// ("keys[3].rate: ..." gives 3).
func scanIndex(msg, list string, i *int) bool {
	rest, ok := strings.CutPrefix(msg, list)
	if !ok {
		return false
	}
	_, err := fmt.Sscanf(rest, "%d]", i)
	return err == nil
}

// merge returns the file's configuration with the stored items added, its
// defaults filled and validated: the configuration the node runs.
func (c *catalog) merge(items storedItems) (*Config, error) {
	m := *c.file
	m.Keys = slices.Clone(c.file.Keys)
	for _, k := range items.keys {
		kc := k.Key
		if k.revoked() {
			kc.Numbers = nil // a revoked key's numbers are free for another
		}
		m.Keys = append(m.Keys, kc)
	}
	m.Carriers = append(slices.Clone(c.file.Carriers), items.carriers...)
	m.Routes = append(slices.Clone(c.file.Routes), items.routes...)
	m.setDefaults()
	if err := m.validate(checks{}); err != nil { // the file's part was checked when loaded
		return nil, err
	}
	return &m, nil
}

// domainKeys makes the key ring's keys of a merged configuration: the
// file's as configured, the stored ones with their rotations and
// revocation.
func (c *catalog) domainKeys(m *Config) []*switchboard.Key {
	keys := make([]*switchboard.Key, len(m.Keys))
	stored := map[string]*storedKey{}
	for _, k := range c.items.keys {
		stored[k.Key.ID] = k
	}
	for i, kc := range m.Keys {
		k := kc.Key()
		if s := stored[kc.ID]; s != nil && i >= len(c.file.Keys) {
			if h, err := hex.DecodeString(s.PreviousSecretSHA256); err == nil && len(h) == 32 {
				copy(k.PreviousSecretHash[:], h)
				k.PreviousSecretUntil = s.PreviousSecretUntil
			}
			k.PreviousWebhookSecret, k.PreviousWebhookUntil = s.PreviousWebhookSecret, s.PreviousWebhookUntil
			k.Revoked = s.revoked()
		}
		keys[i] = &k
	}
	return keys
}

// commit makes items the node's: it validates them with the file's,
// writes the settings that change (puts, then deletes), and applies the
// result to the key ring and the engine. c.mu is held.
func (c *catalog) commit(ctx context.Context, items storedItems, puts map[string]any, deletes ...string) error {
	m, err := c.merge(items)
	if err != nil {
		return invalid(err, len(c.file.Keys), len(c.file.Carriers), len(c.file.Routes))
	}
	for name, v := range puts {
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		if err := c.store.PutSetting(ctx, name, string(b)); err != nil {
			return fmt.Errorf("store %s: %w", name, err)
		}
	}
	for _, name := range deletes {
		if err := c.store.DeleteSetting(ctx, name); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	c.items = items
	if err := c.apply(ctx, m); err != nil {
		return err // not marked seen: the next poll applies the store's items
	}
	// What other nodes wrote since lockFresh, and the store marked seen.
	if err := c.syncLocked(ctx); err != nil {
		c.log.Warn().Err(err).Msg("reading the admin API's items after a change failed; the next poll reads them")
	}
	return nil
}

// apply makes the key ring, the engine's carriers and its routes those of
// m. c.mu is held.
func (c *catalog) apply(ctx context.Context, m *Config) error {
	keys := c.domainKeys(m)
	if c.engine() == nil {
		return errStarting()
	}
	if err := c.engine().FillWebhookSecrets(ctx, keys); err != nil {
		return fmt.Errorf("webhook secrets: %w", err)
	}
	c.ring.Replace(keys)
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	c.engine().KeysChanged(ids...)
	return c.engine().Reconfigure(ctx, engineCarriers(m), engineRoutes(m))
}

// invalid turns validation problems into one EINVALID error for the admin
// API, naming the settings of stored items by their names, not by their
// place in the merged configuration.
func invalid(err error, fileKeys, fileCarriers, fileRoutes int) error {
	var msgs []string
	for _, p := range flattenErrors(err) {
		msg := p.Error()
		for _, l := range []struct {
			list string
			file int
		}{{"keys[", fileKeys}, {"carriers[", fileCarriers}, {"routes[", fileRoutes}} {
			var i int
			if scanIndex(msg, l.list, &i) && i >= l.file {
				if _, rest, ok := strings.Cut(msg, "]"); ok {
					msg = strings.TrimPrefix(strings.TrimPrefix(rest, "."), " ")
				}
			}
		}
		msgs = append(msgs, msg)
	}
	return switchboard.Errorf(switchboard.EINVALID, "%s", strings.Join(msgs, "; "))
}

// poll applies what other nodes changed in the store, every interval
// until ctx ends.
func (c *catalog) poll(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sync(ctx)
		}
	}
}

// sync reads the stored items and, if they changed, applies them.
func (c *catalog) sync(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.syncLocked(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn().Err(err).Msg("reading the admin API's items failed; will retry")
	}
}

// syncLocked applies the stored items if they changed since they were
// last applied; items that conflict with the file are left out, as at
// start. A failed apply is not marked seen, so the next poll tries again.
// c.mu is held.
func (c *catalog) syncLocked(ctx context.Context) error {
	items, seen, err := c.read(ctx)
	if err != nil {
		return err
	}
	if seen == c.seen {
		return nil
	}
	m, err := c.mergeLeavingOut(&items)
	if err != nil {
		c.log.Error().Err(err).Msg("the admin API's items in the store do not fit the configuration; nothing changed")
		c.seen = seen
		return nil
	}
	old := c.items
	c.items = items // apply reads the stored keys' state (revoked, previous secrets) from c.items
	if err := c.apply(ctx, m); err != nil {
		c.items = old
		c.log.Error().Err(err).Msg("applying the admin API's items from the store failed; will retry")
		return nil
	}
	c.seen = seen
	c.log.Info().Msg("keys, carriers and routes changed in the store; applied")
	return nil
}

// reload makes file the configuration's file part (SIGHUP), if it fits
// the stored items; otherwise nothing changes and the error says why.
func (c *catalog) reload(ctx context.Context, file *Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.file
	c.file = file
	m, err := c.merge(c.items)
	if err != nil {
		c.file = old
		return err
	}
	if err := c.apply(ctx, m); err != nil {
		// Back to the file before, as it ran: apply may have replaced the
		// key ring before the engine refused the rest.
		c.file = old
		if m, merr := c.merge(c.items); merr == nil {
			_ = c.apply(ctx, m)
		}
		return err
	}
	return nil
}

// newSecret returns a random secret with a prefix: 32 bytes, base64url.
func newSecret(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
