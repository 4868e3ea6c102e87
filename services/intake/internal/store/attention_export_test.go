package store

// AttentionQueries are the queue's queries with arguments, for the test
// that they can use their index.
var AttentionQueries = []struct {
	Name string
	SQL  string
	Args []any
}{
	{"Attention", attentionListSQL, []any{DefaultStall.Seconds(), DefaultLegalWait.Seconds(), 100}},
	{"AttentionCounts", attentionCountSQL, []any{DefaultStall.Seconds(), DefaultLegalWait.Seconds()}},
}
