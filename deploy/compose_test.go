// Package deploy_test checks docker-compose.yml and the Dockerfile by
// parsing them with compose-go, the loader Docker Compose itself uses: no
// Docker engine and no network are needed.
package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/config"
	"github.com/transit-hq/transit/identity"
)

// knownEnv is every variable config.Load reads. config exports no list, so
// the constants are named here; a variable added there and used in the
// compose file fails TestComposeFile/env-names until it is added here too.
var knownEnv = []string{
	config.EnvDatabaseURL,
	config.EnvTemporalAddress,
	config.EnvTemporalNamespace,
	config.EnvTemporalTLS,
	config.EnvTemporalTLSCert,
	config.EnvTemporalTLSKey,
	config.EnvTemporalTLSCA,
	config.EnvTemporalTLSServer,
	config.EnvTemporalAPIKey,
	config.EnvTemporalUIURL,
	config.EnvTaskQueue,
	config.EnvHTTPAddr,
	config.EnvLogLevel,
	config.EnvLogFormat,
	config.EnvVoteKey,
	config.EnvStoreOutage,
	config.EnvTargetsPerRun,
	config.EnvWorkflowCache,
	config.EnvMaxActivities,
	config.EnvAuditKey,
	config.EnvPublicURL,
	config.EnvWorkerMetricsAddr,
	identity.EnvIssuer,
	identity.EnvAudience,
	identity.EnvSubjectClaim,
	identity.EnvGroupsClaim,
	identity.EnvTeamsClaim,
	identity.EnvRolesClaim,
	identity.EnvGroupMap,
	identity.EnvClientID,
	identity.EnvClientSecret,
}

// searchAttributes are the Keyword search attributes Transit's workflows set.
var searchAttributes = []string{"TransitApplication", "TransitEnvironment", "TransitReleaseVersion", "TransitStage"}

const (
	composeFile   = "docker-compose.yml"
	temporalAddr  = "temporal:7233"
	initDBDir     = "/docker-entrypoint-initdb.d/"
	transitServer = "transit-server"
	transitWorker = "transit-worker"
	setupService  = "temporal-setup"
	schemaService = "temporal-schema"
)

var transitServices = []string{transitServer, transitWorker}

// repoRoot is the directory holding docker-compose.yml: the parent of this
// package's directory, where `go test` runs.
func repoRoot(t require.TestingT) string {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// loadProject parses content (the compose file's bytes) as Docker Compose
// would, with an empty environment so that nothing on the machine running
// the test changes the result.
func loadProject(t require.TestingT, content []byte) *types.Project {
	root := repoRoot(t)
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, composeFile), Content: content}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("transit-compose-test", true)
		o.SkipResolveEnvironment = true
	})
	require.NoError(t, err, "docker-compose.yml must load as Docker Compose would")
	return p
}

func readCompose(t require.TestingT) []byte {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), composeFile))
	require.NoError(t, err)
	return b
}

func service(t require.TestingT, p *types.Project, name string) types.ServiceConfig {
	s, ok := p.Services[name]
	require.Truef(t, ok, "service %q missing; have %v", name, p.ServiceNames())
	return s
}

// env returns a service's variable, failing when it is absent or has no value.
func env(t require.TestingT, s types.ServiceConfig, key string) string {
	v, ok := s.Environment[key]
	require.Truef(t, ok, "service %s does not set %s", s.Name, key)
	require.NotNilf(t, v, "service %s sets %s without a value", s.Name, key)
	return *v
}

// transitConfig runs config.Load over a transit service's environment, as
// the container would.
func transitConfig(t require.TestingT, s types.ServiceConfig) config.Config {
	cfg, err := config.Load(func(key string) string {
		if v := s.Environment[key]; v != nil {
			return *v
		}
		return ""
	})
	require.NoErrorf(t, err, "service %s: config.Load rejects its environment", s.Name)
	require.NoErrorf(t, cfg.RequireDatabase(), "service %s", s.Name)
	return cfg
}

// published returns the host port that service s publishes container port
// target on, failing when it publishes none.
func published(t require.TestingT, s types.ServiceConfig, target uint32) string {
	for _, p := range s.Ports {
		if p.Target == target && p.Published != "" {
			return p.Published
		}
	}
	require.Failf(t, "port not published", "service %s publishes no host port for container port %d (ports: %+v)", s.Name, target, s.Ports)
	return ""
}

func portOf(t require.TestingT, hostport string) string {
	_, port, err := net.SplitHostPort(hostport)
	require.NoErrorf(t, err, "%q is not host:port", hostport)
	return port
}

// dependsOn fails unless service s waits for dep to reach condition.
func dependsOn(t require.TestingT, s types.ServiceConfig, dep, condition string) {
	d, ok := s.DependsOn[dep]
	require.Truef(t, ok, "service %s must depend on %s", s.Name, dep)
	require.Equalf(t, condition, d.Condition, "service %s: condition on %s", s.Name, dep)
}

// ---- the checks, each also run against broken files by TestChecksCatchMistakes ----

type check func(t require.TestingT, p *types.Project)

var checks = map[string]check{
	"services":      checkServices,
	"ports":         checkPorts,
	"database":      checkDatabase,
	"temporal":      checkTemporal,
	"env-names":     checkEnvNames,
	"build":         checkBuild,
	"depends-on":    checkDependsOn,
	"search-attrs":  checkSearchAttributes,
	"images-pinned": checkImagesPinned,
	"healthchecks":  checkHealthchecks,
	"vote-key":      checkVoteKey,
}

// checkVoteKey: the server signs votes with the key that the worker checks
// them with; without one, every vote's groups are looked up instead.
func checkVoteKey(t require.TestingT, p *types.Project) {
	srv := transitConfig(t, service(t, p, transitServer))
	wrk := transitConfig(t, service(t, p, transitWorker))
	require.NotEmpty(t, srv.VoteKey, "transit-server has no %s", config.EnvVoteKey)
	require.Equal(t, srv.VoteKey, wrk.VoteKey, "transit-server and transit-worker must share %s", config.EnvVoteKey)
}

func checkServices(t require.TestingT, p *types.Project) {
	for _, name := range []string{"postgres", schemaService, "temporal", "temporal-ui", setupService, transitServer, transitWorker} {
		service(t, p, name)
	}
	require.Equal(t, []string{"server"}, []string(service(t, p, transitServer).Command))
	require.Equal(t, []string{"worker"}, []string(service(t, p, transitWorker).Command))
	// Postgres keeps its data in a named volume, declared at the top level.
	var dataVolume string
	for _, v := range service(t, p, "postgres").Volumes {
		if v.Target == "/var/lib/postgresql/data" {
			require.Equal(t, types.VolumeTypeVolume, v.Type, "postgres data must be a named volume")
			dataVolume = v.Source
		}
	}
	require.NotEmpty(t, dataVolume, "postgres mounts nothing at /var/lib/postgresql/data")
	require.Contains(t, p.Volumes, dataVolume, "volume %q is not declared under volumes:", dataVolume)
}

func checkPorts(t require.TestingT, p *types.Project) {
	require.Equal(t, "8080", published(t, service(t, p, transitServer), 8080))
	require.Equal(t, "8233", published(t, service(t, p, "temporal-ui"), 8080))
	require.Equal(t, "7233", published(t, service(t, p, "temporal"), 7233))
	for _, name := range transitServices {
		s := service(t, p, name)
		cfg := transitConfig(t, s)
		if name == transitServer {
			require.Equal(t, "8080", portOf(t, cfg.HTTPAddr), "%s must listen where its published port points", name)
		}
		// The UI link must be what a browser on the host reaches: temporal-ui's published port.
		ui, err := url.Parse(cfg.TemporalUIURL)
		require.NoError(t, err)
		require.Contains(t, []string{"localhost", "127.0.0.1"}, ui.Hostname(), "%s: %s", name, config.EnvTemporalUIURL)
		require.Equal(t, published(t, service(t, p, "temporal-ui"), 8080), ui.Port(), "%s: %s", name, config.EnvTemporalUIURL)
	}
}

// postgresAccounts reads which databases and login roles (with passwords)
// the postgres service creates: its superuser and default database, and
// CREATE DATABASE / CREATE ROLE|USER statements in the SQL it mounts into
// /docker-entrypoint-initdb.d.
func postgresAccounts(t require.TestingT, pg types.ServiceConfig) (dbs []string, roles map[string]string) {
	get := func(key, def string) string {
		if v := pg.Environment[key]; v != nil && *v != "" {
			return *v
		}
		return def
	}
	user := get("POSTGRES_USER", "postgres")
	dbs = []string{get("POSTGRES_DB", user)}
	roles = map[string]string{user: get("POSTGRES_PASSWORD", "")}
	createDB := regexp.MustCompile(`(?i)\bCREATE\s+DATABASE\s+"?(\w+)"?`)
	createRole := regexp.MustCompile(`(?is)\bCREATE\s+(?:ROLE|USER)\s+"?(\w+)"?[^;]*?\bPASSWORD\s+'([^']*)'`)
	for _, v := range pg.Volumes {
		if !strings.HasPrefix(v.Target, initDBDir) || !strings.HasSuffix(v.Target, ".sql") {
			continue
		}
		require.Equal(t, types.VolumeTypeBind, v.Type, "init script %s", v.Target)
		sql, err := os.ReadFile(v.Source)
		require.NoError(t, err, "postgres init script")
		for _, m := range createDB.FindAllStringSubmatch(string(sql), -1) {
			dbs = append(dbs, m[1])
		}
		for _, m := range createRole.FindAllStringSubmatch(string(sql), -1) {
			roles[m[1]] = m[2]
		}
	}
	return dbs, roles
}

func checkDatabase(t require.TestingT, p *types.Project) {
	dbs, roles := postgresAccounts(t, service(t, p, "postgres"))
	for _, name := range transitServices {
		s := service(t, p, name)
		raw := env(t, s, config.EnvDatabaseURL)
		u, err := url.Parse(raw)
		require.NoError(t, err, "%s: %s", name, config.EnvDatabaseURL)
		require.Contains(t, []string{"postgres", "postgresql"}, u.Scheme, "%s: %s", name, raw)
		require.Equal(t, "postgres", u.Hostname(), "%s: %s must point at the postgres service", name, config.EnvDatabaseURL)
		require.Contains(t, []string{"", "5432"}, u.Port(), "%s: %s", name, raw)
		db := strings.TrimPrefix(u.Path, "/")
		require.Contains(t, dbs, db, "%s: database %q is not one the postgres service creates (%v)", name, db, dbs)
		require.Equal(t, "disable", u.Query().Get("sslmode"), "%s: the postgres image serves no TLS", name)
		user := u.User.Username()
		pass, _ := u.User.Password()
		want, ok := roles[user]
		require.True(t, ok, "%s: role %q is not one the postgres service creates", name, user)
		require.Equal(t, want, pass, "%s: password of role %q", name, user)
	}
	// Temporal and its schema tool log in as the superuser, which may
	// create Temporal's databases.
	pgEnv := service(t, p, "postgres").Environment
	tmp := service(t, p, "temporal")
	require.Equal(t, "postgres12", env(t, tmp, "DB"))
	require.Equal(t, "postgres", env(t, tmp, "POSTGRES_SEEDS"))
	require.Equal(t, "5432", env(t, tmp, "DB_PORT"))
	require.NotNil(t, pgEnv["POSTGRES_USER"])
	require.NotNil(t, pgEnv["POSTGRES_PASSWORD"])
	require.Equal(t, *pgEnv["POSTGRES_USER"], env(t, tmp, "POSTGRES_USER"))
	require.Equal(t, *pgEnv["POSTGRES_PASSWORD"], env(t, tmp, "POSTGRES_PWD"))
	schema := service(t, p, schemaService)
	require.Equal(t, "postgres", env(t, schema, "POSTGRES_SEEDS"))
	require.Equal(t, "5432", env(t, schema, "DB_PORT"))
	require.Equal(t, *pgEnv["POSTGRES_USER"], env(t, schema, "POSTGRES_USER"))
	require.Equal(t, *pgEnv["POSTGRES_PASSWORD"], env(t, schema, "SQL_PASSWORD"))
}

func checkTemporal(t require.TestingT, p *types.Project) {
	var first config.Config
	for i, name := range transitServices {
		s := service(t, p, name)
		require.Equal(t, temporalAddr, env(t, s, config.EnvTemporalAddress), name)
		cfg := transitConfig(t, s)
		require.False(t, cfg.TemporalTLS.Enabled, "%s: the temporal service serves no TLS", name)
		if i == 0 {
			first = cfg
			continue
		}
		// Server and worker must meet at the same place.
		require.Equal(t, first.DatabaseURL, cfg.DatabaseURL, name)
		require.Equal(t, first.TemporalAddress, cfg.TemporalAddress, name)
		require.Equal(t, first.TemporalNamespace, cfg.TemporalNamespace, name)
		require.Equal(t, first.TaskQueue, cfg.TaskQueue, name)
	}
	require.Equal(t, temporalAddr, env(t, service(t, p, "temporal-ui"), "TEMPORAL_ADDRESS"))
	setup := service(t, p, setupService)
	require.Equal(t, temporalAddr, env(t, setup, "TEMPORAL_ADDRESS"))
	require.Equal(t, first.TemporalNamespace, env(t, setup, "TEMPORAL_NAMESPACE"),
		"search attributes must be registered in the namespace Transit uses")
}

func checkEnvNames(t require.TestingT, p *types.Project) {
	for _, s := range p.AllServices() {
		for key := range s.Environment {
			if strings.HasPrefix(key, "TRANSIT_") {
				require.Contains(t, knownEnv, key, "service %s sets %s, which config.Load does not read", s.Name, key)
			}
		}
	}
}

// dockerfile is the final stage of a Dockerfile: its instructions by keyword
// (upper-cased), each with the rest of the line, continuation lines joined.
type dockerfile struct {
	stages int
	final  map[string][]string
}

func parseDockerfile(t require.TestingT, path string) dockerfile {
	f, err := os.Open(path)
	require.NoError(t, err, "the transit services build from %s", path)
	defer f.Close()
	var (
		d    dockerfile
		line string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if line == "" && (text == "" || strings.HasPrefix(text, "#")) {
			continue
		}
		if rest, ok := strings.CutSuffix(text, `\`); ok {
			line += rest + " "
			continue
		}
		line += text
		keyword, args, _ := strings.Cut(line, " ")
		keyword = strings.ToUpper(keyword)
		if keyword == "FROM" {
			d.stages++
			d.final = map[string][]string{}
		}
		if d.final != nil {
			d.final[keyword] = append(d.final[keyword], strings.TrimSpace(args))
		}
		line = ""
	}
	require.NoError(t, sc.Err())
	return d
}

// execForm parses a JSON-array ENTRYPOINT or CMD.
func execForm(t require.TestingT, what string, values []string) []string {
	require.NotEmpty(t, values, "the final stage has no %s", what)
	var out []string
	require.NoError(t, json.Unmarshal([]byte(values[len(values)-1]), &out), "%s must be in exec form: %s", what, values)
	return out
}

func checkBuild(t require.TestingT, p *types.Project) {
	root := repoRoot(t)
	for _, name := range transitServices {
		s := service(t, p, name)
		require.NotNil(t, s.Build, "%s must build from the repository", name)
		require.Equal(t, root, s.Build.Context, "%s: build context", name)
		require.Empty(t, s.Entrypoint, "%s: the image's ENTRYPOINT runs transit; keep it", name)
		dockerfilePath := s.Build.Dockerfile
		if dockerfilePath == "" {
			dockerfilePath = "Dockerfile"
		}
		if !filepath.IsAbs(dockerfilePath) {
			dockerfilePath = filepath.Join(s.Build.Context, dockerfilePath)
		}
		require.Equal(t, filepath.Join(root, "Dockerfile"), dockerfilePath, "%s: the repository's Dockerfile", name)
		d := parseDockerfile(t, dockerfilePath)
		require.GreaterOrEqual(t, d.stages, 2, "the Dockerfile must be multi-stage: build, then a small runtime")
		entrypoint := execForm(t, "ENTRYPOINT", d.final["ENTRYPOINT"])
		require.NotEmpty(t, entrypoint)
		require.Equal(t, "transit", filepath.Base(entrypoint[0]), "ENTRYPOINT %v", entrypoint)
		require.Equal(t, []string{"server"}, execForm(t, "CMD", d.final["CMD"]), "the image runs the server by default")
		require.Contains(t, strings.Fields(strings.Join(d.final["EXPOSE"], " ")), "8080")
		require.NotEmpty(t, d.final["USER"], "the runtime stage must not run as root")
		user := d.final["USER"][len(d.final["USER"])-1]
		require.NotContains(t, []string{"root", "0", "root:root", "0:0"}, user, "USER")
	}
}

func checkDependsOn(t require.TestingT, p *types.Project) {
	dependsOn(t, service(t, p, schemaService), "postgres", types.ServiceConditionHealthy)
	dependsOn(t, service(t, p, "temporal"), schemaService, types.ServiceConditionCompletedSuccessfully)
	dependsOn(t, service(t, p, setupService), "temporal", types.ServiceConditionHealthy)
	dependsOn(t, service(t, p, "temporal-ui"), "temporal", types.ServiceConditionHealthy)
	for _, name := range transitServices {
		s := service(t, p, name)
		dependsOn(t, s, setupService, types.ServiceConditionCompletedSuccessfully)
		dependsOn(t, s, "postgres", types.ServiceConditionHealthy)
	}
	// A one-shot restarted forever would never complete.
	for _, oneShot := range []string{setupService, schemaService} {
		require.NotContains(t, []string{types.RestartPolicyAlways, types.RestartPolicyUnlessStopped},
			service(t, p, oneShot).Restart, "%s restart policy", oneShot)
	}
	// service_healthy needs a healthcheck to wait for.
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionHealthy {
				hc := service(t, p, dep).HealthCheck
				require.True(t, hc != nil && !hc.Disable && len(hc.Test) > 0,
					"%s waits for %s to be healthy, but %s has no healthcheck", s.Name, dep, dep)
			}
		}
	}
}

func checkSearchAttributes(t require.TestingT, p *types.Project) {
	setup := service(t, p, setupService)
	require.True(t, strings.HasPrefix(setup.Image, "temporalio/admin-tools:"), "%s image: %s", setupService, setup.Image)
	require.ElementsMatch(t, searchAttributes, strings.Fields(env(t, setup, "SEARCH_ATTRIBUTES")))
	// The entrypoint runs a script that the service mounts from deploy/.
	run := strings.Join(append(slices.Clone(setup.Entrypoint), setup.Command...), " ")
	var script string
	for _, v := range setup.Volumes {
		if v.Type == types.VolumeTypeBind && strings.Contains(run, v.Target) {
			script = v.Source
		}
	}
	require.NotEmpty(t, script, "%s must run a script it mounts (runs %q)", setupService, run)
	body, err := os.ReadFile(script)
	require.NoError(t, err)
	require.Contains(t, string(body), "temporal operator search-attribute create")
	require.Contains(t, string(body), "--type Keyword")
	require.Contains(t, string(body), "$SEARCH_ATTRIBUTES")
	// The server image creates no namespace: the script does.
	require.Contains(t, string(body), `temporal operator namespace create`)

	// The schemas: temporal-sql-tool sets up and updates both databases,
	// and the server starts only after it exited 0.
	schema := service(t, p, schemaService)
	require.True(t, strings.HasPrefix(schema.Image, "temporalio/admin-tools:"), "%s image: %s", schemaService, schema.Image)
	schemaScript := mountedScript(t, schema)
	for _, want := range []string{"temporal-sql-tool --plugin postgres12", "setup-schema -v 0.0", "update-schema -d",
		"/etc/temporal/schema/postgresql/v12", "temporal temporal_visibility", "visibility/versioned", "temporal/versioned"} {
		require.Contains(t, schemaScript, want, "%s script", schemaService)
	}
	// The admin-tools and server images are of the same Temporal release.
	_, serverTag, _ := strings.Cut(service(t, p, "temporal").Image, ":")
	_, toolsTag, _ := strings.Cut(schema.Image, ":")
	require.True(t, strings.HasPrefix(toolsTag, serverTag+"-") || toolsTag == serverTag, "server %s, admin-tools %s", serverTag, toolsTag)
}

// mountedScript returns the text of the script that service s runs from a
// file it mounts.
func mountedScript(t require.TestingT, s types.ServiceConfig) string {
	run := strings.Join(append(slices.Clone(s.Entrypoint), s.Command...), " ")
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && strings.Contains(run, v.Target) {
			body, err := os.ReadFile(v.Source)
			require.NoError(t, err)
			return string(body)
		}
	}
	require.Fail(t, "no mounted script", "%s runs %q, which it does not mount", s.Name, run)
	return ""
}

func checkImagesPinned(t require.TestingT, p *types.Project) {
	for _, s := range p.Services {
		if s.Build != nil {
			continue
		}
		require.NotEmpty(t, s.Image, "service %s has neither image nor build", s.Name)
		ref := s.Image[strings.LastIndex(s.Image, "/")+1:]
		_, tag, ok := strings.Cut(ref, ":")
		require.True(t, ok && tag != "" && tag != "latest", "service %s: pin image %q to a tag", s.Name, s.Image)
	}
	require.Equal(t, "postgres:15", service(t, p, "postgres").Image)
	require.True(t, strings.HasPrefix(service(t, p, "temporal").Image, "temporalio/server:"),
		"the server image, not the retired auto-setup one")
	require.True(t, strings.HasPrefix(service(t, p, "temporal-ui").Image, "temporalio/ui:"))
}

func checkHealthchecks(t require.TestingT, p *types.Project) {
	pg := service(t, p, "postgres").HealthCheck
	require.NotNil(t, pg)
	require.Contains(t, []string(pg.Test), "pg_isready")
	tmp := service(t, p, "temporal").HealthCheck
	require.NotNil(t, tmp)
	// The server image has no temporal CLI: the probe is that its frontend
	// port takes connections.
	require.Contains(t, strings.Join(tmp.Test, " "), portOf(t, temporalAddr))
	// The server's healthcheck asks its own API, on the port it listens on.
	srv := service(t, p, transitServer).HealthCheck
	require.NotNil(t, srv)
	probe := strings.Join(srv.Test, " ")
	require.Contains(t, probe, "/readyz")
	require.Contains(t, probe, "/"+portOf(t, transitConfig(t, service(t, p, transitServer)).HTTPAddr)+" ")
}

// ---- tests ----

func TestComposeFile(t *testing.T) {
	raw := readCompose(t)
	require.NotRegexp(t, `(?m)^version\s*:`, string(raw), "the Compose specification has no top-level version")
	p := loadProject(t, raw)
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		t.Run(name, func(t *testing.T) { checks[name](t, p) })
	}
}

func TestComposeSharedEnvironment(t *testing.T) {
	// x-transit-env is the single place the transit services are configured.
	raw := string(readCompose(t))
	require.Regexp(t, `(?m)^x-transit-env:\s*&transit-env\s*$`, raw)
	require.Equal(t, len(transitServices), strings.Count(raw, "environment: *transit-env"))
	p := loadProject(t, []byte(raw))
	require.Equal(t, service(t, p, transitServer).Environment, service(t, p, transitWorker).Environment)
}

// TestChecksCatchMistakes breaks docker-compose.yml in the ways the checks
// exist to catch and requires the named check to fail on each, so that no
// check passes vacuously.
func TestChecksCatchMistakes(t *testing.T) {
	raw := string(readCompose(t))
	cases := []struct {
		name, check, old, new string
	}{
		{"database host", "database", "@postgres:5432/transit?", "@localhost:5432/transit?"},
		{"database name", "database", "@postgres:5432/transit?", "@postgres:5432/transit_db?"},
		{"database password", "database", "postgres://transit:transit@", "postgres://transit:secret@"},
		{"temporal address", "temporal", "TRANSIT_TEMPORAL_ADDRESS: temporal:7233", "TRANSIT_TEMPORAL_ADDRESS: localhost:7233"},
		{"setup namespace", "temporal", "TEMPORAL_NAMESPACE: default", "TEMPORAL_NAMESPACE: transit"},
		{"server port", "ports", `"8080:8080"`, `"8081:8080"`},
		{"ui port", "ports", `"8233:8080"`, `"8234:8080"`},
		{"temporal port", "ports", `"7233:7233"`, `"7234:7233"`},
		{"ui url", "ports", "TRANSIT_TEMPORAL_UI_URL: http://localhost:8233", "TRANSIT_TEMPORAL_UI_URL: http://localhost:8088"},
		{"unknown variable", "env-names", "  TRANSIT_LOG_FORMAT: text\n", "  TRANSIT_LOG_FORMAT: text\n  TRANSIT_METRICS_ADDR: \":9090\"\n"},
		{"setup condition", "depends-on", "condition: service_completed_successfully", "condition: service_started"},
		{"postgres condition", "depends-on", "    depends_on:\n      postgres:\n        condition: service_healthy\n    environment:\n      POSTGRES_SEEDS:", "    depends_on:\n      postgres:\n        condition: service_started\n    environment:\n      POSTGRES_SEEDS:"},
		{"schema before server", "depends-on", "      temporal-schema:\n        condition: service_completed_successfully", "      temporal-schema:\n        condition: service_started"},
		{"auto-setup image", "images-pinned", "temporalio/server:1.29.1", "temporalio/auto-setup:1.29.1"},
		{"missing attribute", "search-attrs", "TransitReleaseVersion TransitStage", "TransitReleaseVersion"},
		{"build context", "build", "      context: .\n", "      context: ./deploy\n"},
		{"worker command", "services", `command: ["worker"]`, `command: ["server"]`},
		{"unpinned image", "images-pinned", "temporalio/ui:2.34.0", "temporalio/ui:latest"},
		{"no vote key", "vote-key", "  TRANSIT_VOTE_KEY: 5f0c", "  TRANSIT_UNUSED_KEY: 5f0c"},
		{"healthcheck port", "healthchecks", "/dev/tcp/127.0.0.1/8080", "/dev/tcp/127.0.0.1/8081"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, raw, c.old, "the case no longer matches docker-compose.yml; update it")
			p := loadProject(t, []byte(strings.Replace(raw, c.old, c.new, 1)))
			require.True(t, fails(checks[c.check], p), "check %q passed on a compose file with a broken %s", c.check, c.name)
			// The unbroken file passes the same check.
			require.False(t, fails(checks[c.check], loadProject(t, []byte(raw))))
		})
	}
}

// fails reports whether c calls FailNow (as require does) on p.
func fails(c check, p *types.Project) bool {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c(r, p)
	}()
	<-done
	return r.failed
}

type recorder struct{ failed bool }

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) FailNow() {
	r.failed = true
	runtime.Goexit()
}
