package linkplan

import (
	"slices"
)

// Tier ranks why a revision is wanted; lower tiers are fetched first.
type Tier int

// Tiers, in fetch order.
const (
	// TierWaiting is a revision the gate is waiting on: a verify of it
	// answered NOT READY recently (a sync blocked in its PreSync hook).
	TierWaiting Tier = iota
	// TierNewest is the newest revision (the tip) of a tracked ref.
	TierNewest
	// TierRollback is a revision of the rollback set: one the site has
	// deployed before (what a rollback goes back to).
	TierRollback
	// TierRest is every other wanted revision (the rest of the kept
	// first-parent history).
	TierRest
)

func (t Tier) String() string {
	switch t {
	case TierWaiting:
		return "waiting"
	case TierNewest:
		return "newest"
	case TierRollback:
		return "rollback"
	default:
		return "rest"
	}
}

// Candidate is one wanted revision to order.
type Candidate struct {
	Repo     string // repository id
	Revision string
	Tier     Tier
	// Weight is the repository's weight (config `weight`, default 1):
	// within a tier, heavier repositories go first.
	Weight int
	// Depth is the revision's distance from its ref's tip (0: the tip):
	// within a tier and weight, newer revisions go first.
	Depth int
	// Index is the candidate's position in the caller's own order
	// (repositories as configured, newest first): the last tie-break.
	Index int
}

// Order sorts cs into fetch order: by tier, then weight (heavier first),
// then depth (newer first), then Index. It sorts in place and returns cs.
func Order(cs []Candidate) []Candidate {
	slices.SortStableFunc(cs, func(a, b Candidate) int {
		switch {
		case a.Tier != b.Tier:
			return int(a.Tier) - int(b.Tier)
		case a.Weight != b.Weight:
			return b.Weight - a.Weight
		case a.Depth != b.Depth:
			return a.Depth - b.Depth
		}
		return a.Index - b.Index
	})
	return cs
}
