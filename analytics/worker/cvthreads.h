#ifdef __cplusplus
extern "C" {
#endif
void offsite_cv_single_thread(void);
#ifdef __cplusplus
}
#endif
