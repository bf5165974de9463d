package validation

// Classes of the bytes that may appear in a metric or label name, as in
// Prometheus's legacy name validation: [a-zA-Z_:][a-zA-Z0-9_:]* for metric
// names, the same without ':' for label names. A table lookup per byte is
// several times faster than the rune loop of model.LegacyValidation, and
// every label of every pushed series goes through it.
const (
	nameFirst  = 1 << iota // may start a label name
	nameRest               // may follow in a label name
	metricOnly             // ':' allowed in metric names only
)

var nameBytes = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = nameFirst | nameRest
		t[c-'a'+'A'] = nameFirst | nameRest
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = nameRest
	}
	t['_'] = nameFirst | nameRest
	t[':'] = metricOnly
	return t
}()

// validLabelName reports whether s is a legacy label name.
func validLabelName(s string) bool {
	if len(s) == 0 || nameBytes[s[0]]&nameFirst == 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if nameBytes[s[i]]&nameRest == 0 {
			return false
		}
	}
	return true
}

// validMetricName reports whether s is a legacy metric name.
func validMetricName(s string) bool {
	if len(s) == 0 || nameBytes[s[0]]&(nameFirst|metricOnly) == 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if nameBytes[s[i]]&(nameRest|metricOnly) == 0 {
			return false
		}
	}
	return true
}
