// Package server runs the process's HTTP and gRPC servers as one service that
// every other component depends on: it starts first and stops last.
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Config is the listen addresses and limits of the servers.
type Config struct {
	HTTPListenAddress       string        `yaml:"http_listen_address"`
	HTTPListenPort          int           `yaml:"http_listen_port"`
	GRPCListenAddress       string        `yaml:"grpc_listen_address"`
	GRPCListenPort          int           `yaml:"grpc_listen_port"`
	GRPCMaxRecvMsgSize      int           `yaml:"grpc_max_recv_msg_size_bytes"`
	GRPCMaxSendMsgSize      int           `yaml:"grpc_max_send_msg_size_bytes"`
	GracefulShutdownTimeout time.Duration `yaml:"graceful_shutdown_timeout"`
	HTTPReadTimeout         time.Duration `yaml:"http_read_timeout"`
	HTTPWriteTimeout        time.Duration `yaml:"http_write_timeout"`
}

// RegisterFlags registers the server flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.HTTPListenAddress, "server.http-listen-address", "", "HTTP listen address (empty = all interfaces).")
	f.IntVar(&c.HTTPListenPort, "server.http-listen-port", 8080, "HTTP listen port (0 = pick a free port).")
	f.StringVar(&c.GRPCListenAddress, "server.grpc-listen-address", "", "gRPC listen address (empty = all interfaces).")
	f.IntVar(&c.GRPCListenPort, "server.grpc-listen-port", 9095, "gRPC listen port (0 = pick a free port).")
	f.IntVar(&c.GRPCMaxRecvMsgSize, "server.grpc-max-recv-msg-size-bytes", 100<<20, "Largest gRPC message the server accepts.")
	f.IntVar(&c.GRPCMaxSendMsgSize, "server.grpc-max-send-msg-size-bytes", 100<<20, "Largest gRPC message the server sends.")
	f.DurationVar(&c.GracefulShutdownTimeout, "server.graceful-shutdown-timeout", 30*time.Second, "How long in-flight requests may take to finish at shutdown.")
	f.DurationVar(&c.HTTPReadTimeout, "server.http-read-timeout", 30*time.Second, "Time limit to read a whole HTTP request, body included.")
	f.DurationVar(&c.HTTPWriteTimeout, "server.http-write-timeout", 2*time.Minute, "Time limit to write an HTTP response.")
}

// Validate checks the ports.
func (c *Config) Validate() error {
	if c.HTTPListenPort < 0 || c.HTTPListenPort > 65535 || c.GRPCListenPort < 0 || c.GRPCListenPort > 65535 {
		return errors.New("listen ports must be between 0 and 65535")
	}
	return nil
}

// Server is the HTTP and gRPC servers. Routes and gRPC services are
// registered before the service starts.
type Server struct {
	services.Service

	cfg    Config
	logger *slog.Logger

	// HTTP is the router of every HTTP endpoint (Go 1.22 patterns).
	HTTP *http.ServeMux
	// GRPC is the gRPC server; tenant metadata is moved into the context.
	GRPC *grpc.Server

	httpListener, grpcListener net.Listener
	httpServer                 *http.Server
	metrics                    *metrics
}

type metrics struct {
	requestDuration *prometheus.HistogramVec
}

// New builds the servers; they listen once the service starts.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	m := &metrics{
		requestDuration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "neocortex_request_duration_seconds",
			Help:                            "Time to serve an HTTP or gRPC request.",
			Buckets:                         prometheus.DefBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"method", "route", "status_code"}),
	}
	s := &Server{
		cfg:     cfg,
		logger:  logger,
		HTTP:    http.NewServeMux(),
		metrics: m,
	}
	s.GRPC = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.GRPCMaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.GRPCMaxSendMsgSize),
		grpc.ChainUnaryInterceptor(s.unaryInstrument, middleware.ServerUserHeaderInterceptor),
		grpc.ChainStreamInterceptor(s.streamInstrument, middleware.StreamServerUserHeaderInterceptor),
	)
	s.httpServer = &http.Server{
		Handler:      s.instrumentHTTP(s.HTTP),
		ReadTimeout:  cfg.HTTPReadTimeout,
		WriteTimeout: cfg.HTTPWriteTimeout,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	s.Service = services.NewBasicService(s.starting, s.running, s.stopping)
	return s
}

// HTTPAddr is the address the HTTP server listens on, once started.
func (s *Server) HTTPAddr() string { return s.httpListener.Addr().String() }

// GRPCAddr is the address the gRPC server listens on, once started.
func (s *Server) GRPCAddr() string { return s.grpcListener.Addr().String() }

// Listen binds both listeners. It is called by starting, and may be called
// earlier by code that needs the bound addresses (port 0) before the start.
func (s *Server) Listen() error {
	if s.httpListener != nil {
		return nil
	}
	hl, err := net.Listen("tcp", net.JoinHostPort(s.cfg.HTTPListenAddress, strconv.Itoa(s.cfg.HTTPListenPort)))
	if err != nil {
		return fmt.Errorf("listen for HTTP: %w", err)
	}
	gl, err := net.Listen("tcp", net.JoinHostPort(s.cfg.GRPCListenAddress, strconv.Itoa(s.cfg.GRPCListenPort)))
	if err != nil {
		hl.Close()
		return fmt.Errorf("listen for gRPC: %w", err)
	}
	s.httpListener, s.grpcListener = hl, gl
	return nil
}

// Close releases the listeners of a server that was never started.
func (s *Server) Close() {
	if s.httpListener != nil {
		s.httpListener.Close()
		s.grpcListener.Close()
	}
}

func (s *Server) starting(context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.logger.Info("server listening", "http", s.HTTPAddr(), "grpc", s.GRPCAddr())
	return nil
}

func (s *Server) running(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		if err := s.httpServer.Serve(s.httpListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve HTTP: %w", err)
		}
	}()
	go func() {
		if err := s.GRPC.Serve(s.grpcListener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("serve gRPC: %w", err)
		}
	}()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

func (s *Server) stopping(error) error {
	// Serve may not have taken the listeners over yet; close them here too
	// so nothing listens once the service is stopped.
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.GracefulShutdownTimeout)
	defer cancel()
	err := s.httpServer.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.GRPC.Stop()
	}
	return err
}

// StatusRecorder is a ResponseWriter that remembers the status code it
// wrote (200 when the handler wrote a body without one); streaming handlers
// can still flush through it.
type StatusRecorder struct {
	http.ResponseWriter
	status int
}

// Status is the status code written so far, 0 if none.
func (r *StatusRecorder) Status() int { return r.status }

// WriteHeader records the code and writes it.
func (r *StatusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records 200 if no code was written, and writes b.
func (r *StatusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (r *StatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush lets streaming handlers (remote read) flush through the recorder.
func (r *StatusRecorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) instrumentHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &StatusRecorder{ResponseWriter: w}
		defer func() {
			// A bug must cost one request a 500, not the connection.
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.logger.Error("panic serving HTTP request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					http.Error(rec, fmt.Sprintf("internal error: %v", p), http.StatusInternalServerError)
				}
				s.metrics.requestDuration.WithLabelValues(r.Method, "panic", "500").Observe(time.Since(start).Seconds())
			}
		}()
		next.ServeHTTP(rec, r)
		route := r.Pattern // set by ServeMux on the request it was given
		if _, pattern := s.HTTP.Handler(r); pattern != "" {
			route = pattern
		}
		if route == "" {
			route = "other"
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.metrics.requestDuration.WithLabelValues(r.Method, route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) unaryInstrument(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.metrics.requestDuration.WithLabelValues("gRPC", info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

func (s *Server) streamInstrument(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	s.metrics.requestDuration.WithLabelValues("gRPC", info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}
