package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
)

// CheckOptions say how far Check goes.
type CheckOptions struct {
	// Connect also opens the store and pings Redis (limits.backend redis),
	// as a start would; without it Check touches no database.
	Connect bool
}

// Check runs the checks a start runs, short of opening listeners: every
// plugin is compiled and made to scan its smoke texts, the policy set
// compiles and passes its test_ rules, and with Connect the store and Redis
// answer. It returns every problem found, each naming its configuration key.
func Check(ctx context.Context, cfg *config.Config, opts CheckOptions) error {
	var errs []error
	clients := map[string]any{}
	if opts.Connect {
		if cfg.Store.Driver != store.DriverPostgres {
			// A start makes the data folder before it opens SQLite there.
			if err := os.MkdirAll(cfg.Resolve(cfg.DataDir), 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
		}
		st, err := OpenStore(ctx, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("store (%s): %w", cfg.Store.Driver, err))
		} else {
			if clients, err = clientsData(ctx, st); err != nil {
				errs = append(errs, fmt.Errorf("store (%s): %w", cfg.Store.Driver, err))
			}
			st.Close()
		}
		if cfg.Limits.Backend == "redis" {
			errs = append(errs, pingRedis(ctx, cfg))
		}
	}
	errs = append(errs, checkPlugins(ctx, cfg), checkPolicy(ctx, cfg, clients))
	return errors.Join(errs...)
}

// checkPlugins loads each plugin as a start does, in a runtime of its own,
// then closes it.
func checkPlugins(ctx context.Context, cfg *config.Config) error {
	if len(cfg.Plugins) == 0 {
		return nil
	}
	// The compilation cache only where one is configured: a check writes
	// nothing to the data folder a start would make.
	cache := ""
	if cfg.PluginCacheDir != "" {
		cache = cfg.PluginCache()
	}
	rt, err := plugin.NewRuntime(ctx, cache)
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	defer rt.Close(ctx)
	rt.LimitMemory(uint64(cfg.PluginMemoryMB()) << 20)
	s := &Server{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var errs []error
	for i, pc := range cfg.Plugins {
		wasm, popts, err := s.pluginModule(i)
		if err == nil {
			_, err = rt.NewSlot(ctx, wasm, popts)
			if err != nil {
				err = fmt.Errorf("plugins[%d] (%s): %w", i, pc.Name, err)
			}
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkPolicy compiles the enforced and shadow sets and runs their tests,
// with the configuration's tiers and departments as data.
func checkPolicy(ctx context.Context, cfg *config.Config, clients map[string]any) error {
	src, shadow, err := policySources(cfg)
	if err != nil {
		return err
	}
	tiers, err := cfg.TiersData()
	if err != nil {
		return err
	}
	departments, err := cfg.DepartmentsData()
	if err != nil {
		return err
	}
	set, err := policy.NewSet(ctx, policy.SetConfig{
		Policies: src, Shadow: shadow, TimeZone: cfg.TimeZone(),
		EvalTimeout: cfg.Policy.EvalTimeout.D(), AllowBuiltins: cfg.Policy.AllowBuiltins, Headers: cfg.Policy.Headers,
		Data:          map[string]any{"sluice": map[string]any{"tiers": tiers, "departments": departments, "clients": clients}},
		DecisionCache: -1,
	})
	if err != nil {
		return err
	}
	set.Close()
	return nil
}

func pingRedis(ctx context.Context, cfg *config.Config) error {
	o, err := redis.ParseURL(cfg.Limits.Redis.URL)
	if err != nil {
		return fmt.Errorf("limits.redis.url: %w", err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, max(cfg.Limits.Redis.Timeout.D(), time.Second))
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("limits.redis: %s: %w", o.Addr, err)
	}
	return nil
}
