/* mpdev-demo's migration step: edu moves, mid-work, from one remote to another. */
#ifndef MPDEV_DEMO_MIGRATE_H
#define MPDEV_DEMO_MIGRATE_H

/* Runs the step with remotes of bin; prints what happened; 0 if it all arrived. */
int demo_migrate(const char *bin);

#endif
