package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/archive"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// runArchive writes one day's messages of every key to Parquet files,
// reading the store the configuration names. The embedded store can be
// opened by one process at a time: the node must be stopped.
func runArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: switchboard archive --date YYYY-MM-DD --out DIR [--config FILE] [--set path=value ...] [--keys k1,k2]

Writes the messages accepted on one UTC day to Parquet, one file per API
key: DIR/YYYY-MM-DD/<key>.parquet. Reads the store of the configuration
(node.data_dir for the embedded store, which only a stopped node leaves
free).

Flags:
`)
		fs.PrintDefaults()
	}
	date := fs.String("date", "", "the UTC `day` to archive, YYYY-MM-DD")
	out := fs.String("out", "", "`directory` to write the files under")
	configFlag := fs.String("config", "", "configuration `file` (default $SWITCHBOARD_CONFIG, else ./cluster.yaml)")
	keysFlag := fs.String("keys", "", "comma-separated API key `ids` to archive (default: every key of the configuration, the admin API's too; name a removed key here)")
	var sets multiFlag
	fs.Var(&sets, "set", "override one setting, `path=value`; repeatable")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("archive: unexpected argument %q", fs.Arg(0))}
	case *out == "":
		return usageError{errors.New("archive: --out is required")}
	}
	if _, err := time.Parse(time.DateOnly, *date); err != nil {
		return usageError{fmt.Errorf("archive: --date %q is not YYYY-MM-DD", *date)}
	}
	cfg, err := loadConfig(configPath(*configFlag, os.Environ()), os.Environ(), sets)
	if err != nil {
		return usageError{err}
	}
	if cutoff := time.Now().Add(-cfg.Storage.TTL.Std()).UTC().Format(time.DateOnly); *date < cutoff {
		fmt.Fprintf(stderr, "archive: warning: %s is older than storage.ttl (%v): the node's retention may have deleted some or all of its messages\n", *date, cfg.Storage.TTL)
	}
	store, err := openArchiveStore(cfg, newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	keys, err := archiveKeys(ctx, cfg, store, *keysFlag)
	if err == nil && len(keys) == 0 {
		err = usageError{errors.New("archive: no keys: the configuration has none, the admin API made none, and --keys names none")}
	}
	if err != nil {
		return errors.Join(err, store.Close())
	}
	files, err := archive.Write(ctx, store, archive.Options{Day: *date, Keys: keys, Dir: *out, Version: buildVersion()})
	for _, f := range files {
		switch {
		case f.Path == "":
			fmt.Fprintf(stdout, "%s: no messages on %s\n", f.Key, *date)
		case f.Kept:
			fmt.Fprintf(stdout, "%s: %d messages, kept in %s (the store has fewer now)\n", f.Key, f.Messages, f.Path)
		default:
			fmt.Fprintf(stdout, "%s: %d messages → %s\n", f.Key, f.Messages, f.Path)
		}
	}
	return errors.Join(err, store.Close())
}

// archiveKeys are the keys --keys names, else every key of the
// configuration: the file's, and those the admin API made (revoked ones
// too: their messages are kept as long as any other's).
func archiveKeys(ctx context.Context, cfg *Config, store switchboard.Settings, flagValue string) ([]string, error) {
	var keys []string
	if flagValue != "" {
		for _, k := range strings.Split(flagValue, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			if !nameRE.MatchString(k) { // it names a file: no "/" or ".."
				return nil, usageError{fmt.Errorf("archive: --keys: %q is not a key id (A-Z a-z 0-9 _ -, at most 64)", k)}
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	for _, k := range cfg.Keys {
		keys = append(keys, k.ID)
	}
	made, err := store.ListSettings(ctx, settingKey)
	if err != nil {
		return nil, fmt.Errorf("archive: the admin API's keys: %w", err)
	}
	for _, s := range made {
		if id := strings.TrimPrefix(s.Name, settingKey); !slices.Contains(keys, id) {
			keys = append(keys, id)
		}
	}
	return keys, nil
}

// openArchiveStore opens the store the configuration names. The embedded
// one, in node.data_dir, must exist (an archive never creates an empty
// store) and be free.
func openArchiveStore(cfg *Config, log zerolog.Logger) (switchboard.Store, error) {
	if cfg.Storage.Backend != StorageEmbedded {
		return nil, usageError{fmt.Errorf("archive: storage.backend %s is not supported: archive reads the embedded store", cfg.Storage.Backend)}
	}
	dir := cfg.Node.DataDir
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("archive: node.data_dir %s: %w", dir, err)
	}
	// The node's own options, but no retention: a pass that began while
	// a day was being read would leave its file short.
	opts := cfg.Storage.pebbleOptions(log)
	opts.HousekeepingInterval = -1
	s, err := pebble.Open(dir, opts)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("archive: the store in %s is in use: stop the node first (the embedded store can be opened by one process at a time)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return s, nil
}
