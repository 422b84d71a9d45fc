package models

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPolicyDefaultsAndValidation(t *testing.T) {
	var p Policy
	p.Normalize()
	require.NoError(t, p.Validate())
	require.Equal(t, StrategyAllAtOnce, p.Strategy.Kind)
	require.Equal(t, Duration(DefaultApprovalExpiry), p.ApprovalExpiry)

	bad := Policy{ApprovalsRequired: -1,
		ChangeWindows: []ChangeWindow{{Days: []string{"funday"}, Start: "25:00", End: "10:00", Timezone: "Mars/Olympus"}},
		Strategy:      Strategy{Kind: StrategyRolling},
		ValidationChecks: []CheckSpec{{Name: "a", Type: "http", Config: json.RawMessage(`{"url":"ftp://x"}`)},
			{Name: "a", Type: "carrier-pigeon"}},
		ObservationProbes: []ProbeSpec{{Name: "p", Type: "http", Config: json.RawMessage(`{"url":"http://x/{{.Target.Name}}"}`)}},
		ExitCriteria:      ExitCriteria{MaxOpenIncidentSeverity: "apocalyptic", MinProbeSuccessRatio: 2},
	}
	bad.Normalize()
	err := bad.Validate()
	require.ErrorIs(t, err, ErrInvalid)
	for _, field := range []string{"approvals_required", "change_windows[0].days", "change_windows[0].start", "change_windows[0].timezone",
		"strategy.batch", "validation_checks[0].config.url", "validation_checks[1].name", "validation_checks[1].config.type",
		"observation_probes[0].threshold", "exit_criteria.blocking_incident_severity", "exit_criteria.min_probe_success_ratio"} {
		require.Contains(t, err.Error(), field+":")
	}
}

func TestCanaryStepJSON(t *testing.T) {
	var s Strategy
	require.NoError(t, json.Unmarshal([]byte(`{"kind":"canary","steps":[1,"25%","100%"],"bake":"5m"}`), &s))
	require.Equal(t, []CanaryStep{{Count: 1}, {Percent: 25}, {Percent: 100}}, s.Steps)
	require.Equal(t, Duration(5*time.Minute), s.Bake)
	out, err := json.Marshal(s.Steps)
	require.NoError(t, err)
	require.Equal(t, `[1,"25%","100%"]`, string(out))
	require.Error(t, json.Unmarshal([]byte(`{"steps":["half"]}`), &s))
	require.Error(t, json.Unmarshal([]byte(`{"bake":"soon"}`), &s))
}

func TestNextOpen(t *testing.T) {
	mon9 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) // a Monday
	p := Policy{ChangeWindows: []ChangeWindow{{Days: []string{"mon", "wed"}, Start: "10:00", End: "12:00", Timezone: "UTC"}}}
	require.Equal(t, mon9.Add(time.Hour), p.NextOpen(mon9), "before the window: its start")
	require.Equal(t, mon9.Add(2*time.Hour), p.NextOpen(mon9.Add(2*time.Hour)), "inside: now")
	require.Equal(t, time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC), p.NextOpen(mon9.Add(4*time.Hour)), "after: the next day with a window")

	p.Freezes = []Freeze{{Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)}}
	require.Equal(t, time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC), p.NextOpen(mon9), "a freeze skips the windows it covers")

	overnight := Policy{ChangeWindows: []ChangeWindow{{Days: []string{"fri"}, Start: "22:00", End: "02:00"}}}
	sat1 := time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC)
	require.Equal(t, sat1, overnight.NextOpen(sat1), "a window past midnight is open the next morning")

	paris := Policy{ChangeWindows: []ChangeWindow{{Days: []string{"mon"}, Start: "10:00", End: "11:00", Timezone: "Europe/Paris"}}}
	require.Equal(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), paris.NextOpen(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)).UTC())

	// 29 March 2026: clocks in Paris go forward at 02:00; a 10:00 window is 08:00 UTC.
	dst := Policy{ChangeWindows: []ChangeWindow{{Days: []string{"sun"}, Start: "10:00", End: "11:00", Timezone: "Europe/Paris"}}}
	require.Equal(t, time.Date(2026, 3, 29, 8, 0, 0, 0, time.UTC), dst.NextOpen(time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)).UTC())

	require.Equal(t, mon9, (&Policy{}).NextOpen(mon9), "no windows: any time")
	forever := Policy{Freezes: []Freeze{{Start: mon9.Add(-time.Hour), End: mon9.Add(100 * 24 * time.Hour)}}}
	require.True(t, forever.NextOpen(mon9).IsZero(), "nothing opens within 60 days")
}

func TestReleaseValidation(t *testing.T) {
	art := NewJSON([]Artifact{{Name: "api", Image: "api:1"}})
	for version, ok := range map[string]bool{"1.2.3": true, "v2.0.0-rc.1+build.5": true, "2026-03-01.4": true, "1.2": false,
		"01.2.3": false, "nightly-42": true, "": false, "has space": false} {
		r := Release{ApplicationID: "app_1", Version: version, Artifacts: art}
		if ok {
			require.NoError(t, r.Validate(), version)
		} else {
			require.Error(t, r.Validate(), version)
		}
	}
	r := Release{ApplicationID: "app_1", Version: "1.0.0", Artifacts: NewJSON([]Artifact{{Name: "a"}, {Name: "a", Version: "1", Digest: "md5"}})}
	err := r.Validate()
	require.ErrorContains(t, err, "artifacts[0]: give a version or an image")
	require.ErrorContains(t, err, `artifacts[1].name: "a" appears twice`)
	require.ErrorContains(t, err, "artifacts[1].digest")
}

func TestDriverConfigValidation(t *testing.T) {
	parent := &ValidationError{}
	require.NoError(t, ValidateDriverConfig(DriverSimulated, json.RawMessage(`{"failure_rate":0.5}`), parent))
	err := ValidateDriverConfig(DriverSimulated, json.RawMessage(`{"failure_rate":0.5,"colour":"red"}`), parent)
	require.ErrorContains(t, err, "colour: is not a known field")
	err = ValidateDriverConfig(DriverHTTP, json.RawMessage(`{"url":"https://x","hmac_secret":"hunter2"}`), parent)
	require.ErrorContains(t, err, "hmac_secret")
	require.NoError(t, ValidateDriverConfig(DriverScript, json.RawMessage(`{"command":"deploy.sh","shell":true}`), parent))
	require.Empty(t, parent.Fields)
	require.NoError(t, ValidateDriverConfig("ftp", nil, parent))
	require.Len(t, parent.Fields, 1, "an unknown driver is the parent's field")
}
