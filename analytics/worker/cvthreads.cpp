#include <opencv2/core.hpp>
#include "cvthreads.h"

void offsite_cv_single_thread(void) { cv::setNumThreads(1); }
