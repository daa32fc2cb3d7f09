//go:build !race

package syncer_test

const raceOn = false
