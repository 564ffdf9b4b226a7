/** dbservice: the only holder of database credentials. */
import type { ServiceModule } from "@crm/kit";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { dbAuthService } from "./auth-store.js";
import type { Db } from "./db.js";

export interface DbModuleDeps {
  db: Db;
}

export function createDbModule({ db }: DbModuleDeps): ServiceModule {
  return {
    name: "dbservice",
    services: [DbAuthService],
    // Run before a tenant is known: no user token, guarded by requirePeer("auth") instead.
    publicMethods: ["RegisterCompany", "LoginDB", "CreateSession", "RotateRefreshToken"].map((m) => `/${DbAuthService.typeName}/${m}`),
    routes(router) {
      router.service(DbAuthService, dbAuthService(db));
    },
    ready: () => db.ping(),
    close: () => db.close(),
  };
}
