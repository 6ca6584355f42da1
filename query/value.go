package query

import (
	"strconv"
	"time"
)

// Date is a date operand: a calendar day written YYYY-MM-DD, or an instant
// written in RFC 3339, whose calendar day depends on the time zone.
type Date struct {
	t       time.Time // midnight UTC of the day when !instant
	instant bool
}

// Years outside this range are rejected, so that every day boundary the
// translator computes is a four-digit year in any time zone.
const minYear, maxYear = 1000, 9998

func parseDate(s string) (Date, bool) {
	d := Date{}
	var err error
	if d.t, err = time.Parse(time.DateOnly, s); err != nil {
		if d.t, err = time.Parse(time.RFC3339, s); err != nil {
			return Date{}, false
		}
		d.instant = true
	}
	if y := d.t.UTC().Year(); y < minYear || y > maxYear {
		return Date{}, false
	}
	return d, true
}

// Day returns the calendar day the operand names in the time zone loc.
func (d Date) Day(loc *time.Location) (year int, month time.Month, day int) {
	if d.instant {
		return d.t.In(loc).Date()
	}
	return d.t.Date()
}

// String returns the operand as the filter wrote it, up to formatting.
func (d Date) String() string {
	if d.instant {
		return d.t.Format(time.RFC3339Nano)
	}
	return d.t.Format(time.DateOnly)
}

// Duration is the length of a rolling window [now − Duration, now]: N hours
// when Unit is 'h', N calendar days (the same wall-clock time N days
// earlier in the time zone) when Unit is 'd'.
type Duration struct {
	N    int
	Unit byte
}

// maxDurationDays bounds a duration to about 100 years.
const maxDurationDays = 36500

func parseDuration(s string) (Duration, bool) {
	if len(s) < 2 {
		return Duration{}, false
	}
	unit := s[len(s)-1]
	digits := s[:len(s)-1]
	if digits[0] < '1' || digits[0] > '9' {
		return Duration{}, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return Duration{}, false
	}
	switch {
	case unit == 'd' && n <= maxDurationDays, unit == 'h' && n <= maxDurationDays*24:
		return Duration{N: n, Unit: unit}, true
	}
	return Duration{}, false
}

// String returns the duration as written in a filter, e.g. "7d".
func (d Duration) String() string { return strconv.Itoa(d.N) + string(d.Unit) }
