//go:build race

package http

// raceEnabled: the race detector allows at most 8128 live goroutines, and
// fasthttp runs one per connection.
const raceEnabled = true
