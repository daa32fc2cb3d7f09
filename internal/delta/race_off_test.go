//go:build !race

package delta_test

const raceOn = false
