package main

import (
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// startBroker runs an MQTT broker that accepts any login and hands each reading published on
// offsite/{site}/{device}/up to the state, which opens an alert when it is over a limit.
func startBroker(addr string, st *state, log *slog.Logger) (*mqtt.Server, error) {
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, err
	}
	if err := srv.Serve(); err != nil {
		return nil, err
	}
	err := srv.Subscribe("offsite/+/+/up", 1, func(cl *mqtt.Client, sub packets.Subscription, pk packets.Packet) {
		parts := strings.Split(pk.TopicName, "/")
		if len(parts) == 4 {
			log.Info("reading", "device", parts[2], "payload", string(pk.Payload))
			st.onReading(parts[2], pk.Payload)
		}
	})
	return srv, err
}
