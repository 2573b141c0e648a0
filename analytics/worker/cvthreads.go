package worker

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include "cvthreads.h"
*/
import "C"

// SingleThreadedOpenCV stops OpenCV from splitting each small operation over a thread pool:
// the worker already runs one goroutine per camera, and on a 320-wide picture the pool costs
// more in hand-offs than it saves. Call once at start.
func SingleThreadedOpenCV() { C.offsite_cv_single_thread() }
