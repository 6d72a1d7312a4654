/* Stand-in for ESP-IDF's start-up (tests only): main() calls app_main(). */
void app_main(void);

int main(void) {
  app_main();
  return 0;
}
