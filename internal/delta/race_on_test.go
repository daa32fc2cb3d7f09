//go:build race

package delta_test

// raceOn is true under the race detector, which makes byte-by-byte code
// ten times slower or more: tests then use smaller layers.
const raceOn = true
