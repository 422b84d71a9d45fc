package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func init() {
	// The schedule's iCalendar feed is text: checked against its
	// description as a string.
	openapi3filter.RegisterBodyDecoder("text/calendar", openapi3filter.PlainBodyDecoder)
}

// The forward schedule of change, over real HTTP: two applications whose
// targets share a host label have deployments expected to overlap, and
// the schedule names the conflict; a deployment expected to run into a
// freeze is named too. The same schedule is an iCalendar feed that a
// strict parser reads, with the same events and times. At planning, a
// conflict is warned in the plan and on the timeline, refused where the
// policy says refuse (the deployment ends rejected, naming it), and
// waited for where it says wait.
func TestScheduleOfChange(t *testing.T) {
	s := newStack(t, stackOptions{})
	a := newAPIChecker(t, s)
	viewer := s.issue(models.APIToken{Subject: "vera", Roles: models.NewJSON([]string{models.RoleViewer})})
	now := time.Now().UTC().Truncate(time.Second)
	freeze := models.Freeze{Start: now.Add(3 * time.Minute), End: now.Add(2 * time.Hour), Reason: "payments cut-over; all hands"}

	// app makes an application with a prod environment of one target on host.
	app := func(name string, policy models.Policy, host string) (appID, envID, relID string) {
		appID = s.must(201, "POST", "/api/v1/applications", map[string]any{"name": name, "owner_team": "web"}).str("id")
		envID = s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": appID, "name": "prod", "position": 1, "policy": policy}).str("id")
		s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": envID, "name": name + "-01", "driver": "simulated",
			"config": json.RawMessage(`{"latency_min":"10ms","latency_max":"20ms"}`), "labels": map[string]string{"host": host}})
		relID = s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": appID, "version": "1.0.0",
			"artifacts": []map[string]string{{"name": name, "image": name + ":1"}}}).str("id")
		return appID, envID, relID
	}
	approved := func(p models.Policy) models.Policy {
		p.ApprovalsRequired, p.ApproverGroups = 1, []string{"release-managers"}
		return p
	}

	shopPolicy := approved(quickPolicy())
	shopPolicy.ConflictLabel = "host"
	shopPolicy.Freezes = []models.Freeze{freeze}
	_, shopEnv, shopRel := app("shop", shopPolicy, "h1")
	billingPolicy := approved(quickPolicy()) // names no label: shop's is enough
	billingApp, billingEnv, billingRel := app("billing", billingPolicy, "h1")

	// The new policy fields are checked.
	r := s.call("POST", "/api/v1/environments", s.admin, map[string]any{"application_id": billingApp, "name": "bad",
		"policy": map[string]any{"conflict_label": "Host Name", "on_conflict": "maybe"}})
	require.Equal(t, 422, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"field":"policy.conflict_label"`)
	require.Contains(t, r.Raw, `"field":"policy.on_conflict"`)
	r = s.call("POST", "/api/v1/environments", s.admin, map[string]any{"application_id": billingApp, "name": "bad",
		"policy": map[string]any{"on_conflict": "refuse"}})
	require.Equal(t, 422, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "policy.on_conflict: needs conflict_label")

	shopDep := s.deploy(s.admin, map[string]any{"release": shopRel, "environment": shopEnv, "reason": "new checkout"})
	s.waitStatus(shopDep, 30*time.Second, models.StatusAwaitingApproval)
	billDep := s.deploy(s.admin, map[string]any{"release": billingRel, "environment": billingEnv})
	d := s.waitStatus(billDep, 30*time.Second, models.StatusAwaitingApproval)

	// Planning warned: the plan and the timeline name shop's deployment.
	conflicts, _ := d.get("deployment", "plan", "conflicts").([]any)
	require.Len(t, conflicts, 1, d.Raw)
	require.Contains(t, conflicts[0], shopDep+" (shop 1.0.0 to prod, awaiting_approval) also changes host h1 (its shop-01; here billing-01)")
	require.Contains(t, strings.Join(s.events(billDep), "\n"), "planning found conflicts with 1 active deployment (on_conflict: warn)")

	// The schedule (as a viewer), checked against api/openapi.json.
	from, to := now.Add(-time.Minute), now.Add(7*24*time.Hour)
	query := "?from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	sch := a.do(200, "GET", "/api/v1/schedule"+query, viewer, nil)
	var schedule models.Schedule
	require.NoError(t, json.Unmarshal([]byte(sch.Raw), &schedule))
	byID := map[string]models.ScheduledDeployment{}
	for _, sd := range schedule.Deployments {
		byID[sd.ID] = sd
	}
	require.Contains(t, byID, shopDep)
	require.Contains(t, byID, billDep)
	shop, bill := byID[shopDep], byID[billDep]
	require.Equal(t, models.StartApproval, shop.StartBasis)
	require.Equal(t, models.EstimatePolicy, shop.Duration.Basis, "no history yet")
	require.Contains(t, shop.Duration.Method, "no completed deployment of shop to prod yet")
	require.Equal(t, shop.ExpectedStart.Add(shop.Duration.Expected.D()), shop.ExpectedEnd)
	require.Equal(t, []string{"billing-01"}, bill.Targets)

	var overlap, intoFreeze *models.ScheduleConflict
	for i, c := range schedule.Conflicts {
		switch {
		case c.Kind == models.ConflictOverlap && slices.Equal(c.Deployments, []string{shopDep, billDep}):
			overlap = &schedule.Conflicts[i]
		case c.Kind == models.ConflictFreeze && slices.Equal(c.Deployments, []string{shopDep}):
			intoFreeze = &schedule.Conflicts[i]
		}
	}
	require.NotNil(t, overlap, "the conflict across applications on host h1: %s", sch.Raw)
	require.Equal(t, "host", overlap.Label)
	require.Equal(t, []string{"h1"}, overlap.Values)
	require.Equal(t, []string{"shop/prod/shop-01", "billing/prod/billing-01"}, overlap.Targets)
	require.NotNil(t, intoFreeze, "shop's deployment is expected to run into its freeze: %s", sch.Raw)
	require.Equal(t, freeze.Start, intoFreeze.Start)
	require.Contains(t, intoFreeze.Message, "payments cut-over; all hands")
	require.Len(t, schedule.Freezes, 1)

	a.do(200, "GET", "/api/v1/schedule?application_id=billing&format=json", viewer, nil)
	a.do(400, "GET", "/api/v1/schedule?since=yesterday", viewer, nil)
	a.do(400, "GET", "/api/v1/schedule?from=tomorrow", viewer, nil)
	a.do(400, "GET", "/api/v1/schedule?format=pdf", viewer, nil)
	a.do(422, "GET", "/api/v1/schedule?from="+url.QueryEscape(to.Format(time.RFC3339))+"&to="+url.QueryEscape(from.Format(time.RFC3339)), viewer, nil)
	a.do(422, "GET", "/api/v1/schedule?to="+url.QueryEscape(now.Add(400*24*time.Hour).Format(time.RFC3339)), viewer, nil)
	a.do(422, "GET", "/api/v1/schedule?application_id=nope", viewer, nil)
	a.do(401, "GET", "/api/v1/schedule", "", nil)

	// The iCalendar feed, by ?format=ics and by Accept: text/calendar.
	feed := func(path string, headers ...string) (*ics.Calendar, string) {
		t.Helper()
		resp := a.do(200, "GET", path, viewer, nil, headers...)
		raw := resp.Raw
		require.True(t, strings.HasPrefix(raw, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"), raw)
		for i, l := range strings.Split(strings.TrimSuffix(raw, "\r\n"), "\r\n") {
			require.LessOrEqual(t, len(l), 75, "line %d is longer than 75 octets", i)
			require.NotContains(t, l, "\n", "line %d ends without CR", i)
		}
		cal, err := ics.ParseCalendar(strings.NewReader(raw)) // strict: no stray properties
		require.NoError(t, err, raw)
		return cal, raw
	}
	cal, raw := feed("/api/v1/schedule" + query + "&format=ics")
	byUID := map[string]*ics.VEvent{}
	for _, ev := range cal.Events() {
		require.NotEmpty(t, ev.GetProperty(ics.ComponentPropertyDtstamp), "every event has a DTSTAMP")
		require.NotNil(t, ev.GetProperty(ics.ComponentPropertySummary))
		byUID[ev.Id()] = ev
	}
	for _, sd := range []models.ScheduledDeployment{shop, bill} {
		ev := byUID[sd.ID+"@transit"]
		require.NotNil(t, ev, "an event for %s: %s", sd.ID, raw)
		start, err := ev.GetStartAt()
		require.NoError(t, err)
		require.Equal(t, sd.ExpectedStart, start.UTC())
		end, err := ev.GetEndAt()
		require.NoError(t, err)
		require.Equal(t, sd.ExpectedEnd, end.UTC())
		require.Equal(t, sd.Title()+" (awaiting approval)", ics.FromText(ev.GetProperty(ics.ComponentPropertySummary).Value))
		require.Contains(t, ics.FromText(ev.GetProperty(ics.ComponentPropertyDescription).Value), "CONFLICT: ")
	}
	require.Contains(t, ics.FromText(byUID[shopDep+"@transit"].GetProperty(ics.ComponentPropertyDescription).Value), "Reason: new checkout")
	var freezeEvent, conflictEvents int
	for _, ev := range cal.Events() {
		switch ics.FromText(ev.GetProperty(ics.ComponentPropertyCategories).Value) {
		case "FREEZE":
			freezeEvent++
			start, err := ev.GetStartAt()
			require.NoError(t, err)
			end, err := ev.GetEndAt()
			require.NoError(t, err)
			require.Equal(t, []time.Time{freeze.Start, freeze.End}, []time.Time{start.UTC(), end.UTC()})
			require.Equal(t, "Freeze: shop prod (payments cut-over; all hands)", ics.FromText(ev.GetProperty(ics.ComponentPropertySummary).Value))
		case "CONFLICT":
			conflictEvents++
		}
	}
	require.Equal(t, 1, freezeEvent)
	require.Equal(t, len(schedule.Conflicts), conflictEvents)

	req, err := http.NewRequest("GET", s.baseURL+"/api/v1/schedule"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+viewer)
	req.Header.Set("Accept", "text/calendar")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.Equal(t, "text/calendar; charset=utf-8", resp.Header.Get("Content-Type"))
	accepted, _ := feed("/api/v1/schedule"+query, "Accept", "text/calendar")
	require.Len(t, accepted.Events(), len(cal.Events()), "Accept: text/calendar is the same feed")

	// on_conflict: refuse: the deployment ends rejected, naming the conflict.
	ledgerPolicy := quickPolicy()
	ledgerPolicy.ConflictLabel, ledgerPolicy.OnConflict = "host", models.OnConflictRefuse
	_, ledgerEnv, ledgerRel := app("ledger", ledgerPolicy, "h1")
	refused := s.deploy(s.admin, map[string]any{"release": ledgerRel, "environment": ledgerEnv})
	d = s.waitStatus(refused, 30*time.Second, models.TerminalStatuses...)
	require.Equal(t, string(models.StatusRejected), d.str("deployment", "status"), d.str("deployment", "outcome"))
	outcome := d.str("deployment", "outcome")
	require.Contains(t, outcome, "refused by the conflict policy of prod: conflicts with 2 active deployments (on_conflict: refuse)")
	require.Contains(t, outcome, shopDep+" (shop 1.0.0 to prod, awaiting_approval) also changes host h1")
	require.Contains(t, outcome, billDep+" (billing 1.0.0 to prod, awaiting_approval)")
	conflicts, _ = d.get("deployment", "plan", "conflicts").([]any)
	require.Len(t, conflicts, 2, "the refused plan shows what it conflicts with: %s", d.Raw)

	// on_conflict: wait: it waits (queued) for the earlier conflicting
	// deployments, and goes on when they have ended.
	searchPolicy := quickPolicy()
	searchPolicy.ConflictLabel, searchPolicy.OnConflict = "host", models.OnConflictWait
	_, searchEnv, searchRel := app("search", searchPolicy, "h1")
	waiting := s.deploy(s.admin, map[string]any{"release": searchRel, "environment": searchEnv})
	d = s.waitStatus(waiting, 30*time.Second, models.StatusQueued)
	require.Equal(t, string(models.HoldQueued), d.str("deployment", "hold", "kind"))
	require.Contains(t, d.str("deployment", "hold", "reason"), shopDep)
	require.Contains(t, d.str("deployment", "plan", "conflicts"), "waits for it to end")
	// The schedule places it after them, so it no longer overlaps them.
	schedule = models.Schedule{}
	require.NoError(t, json.Unmarshal([]byte(a.do(200, "GET", "/api/v1/schedule", viewer, nil).Raw), &schedule))
	found := false
	for _, sd := range schedule.Deployments {
		if sd.ID == waiting {
			found = true
			require.Equal(t, models.StartQueued, sd.StartBasis, sd.StartReason)
			require.Contains(t, sd.StartReason, "which it waits for (on_conflict: wait)")
			require.False(t, sd.ExpectedStart.Before(byID[billDep].ExpectedEnd), "after billing's deployment")
		}
	}
	require.True(t, found, "the waiting deployment is in the schedule")
	for _, c := range schedule.Conflicts {
		require.False(t, c.Kind == models.ConflictOverlap && slices.Contains(c.Deployments, waiting), "%+v", c)
	}
	aborted := time.Now()
	for _, id := range []string{shopDep, billDep} {
		require.Equal(t, 200, s.call("POST", "/api/v1/deployments/"+id+"/abort", s.admin, map[string]any{"reason": "make way"}).Status)
		s.waitStatus(id, 30*time.Second, models.StatusCancelled)
	}
	d = s.waitStatus(waiting, 90*time.Second, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusFailed, models.StatusRejected)
	// Woken by the ends of those it waited for, not by its lane's 30 s
	// re-check.
	require.Less(t, time.Since(aborted), 15*time.Second, "the waiting deployment was woken when they ended")
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Empty(t, d.get("deployment", "plan", "conflicts"), "planned again once they ended: no conflict left")
}
