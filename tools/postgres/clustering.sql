-- OrleansGpu: Orleans ADO.NET clustering (membership) schema for PostgreSQL.
--
-- Written for this project from the contract Orleans' AdoNet clustering provider expects (the NuGet packages ship
-- no SQL): the tables OrleansQuery, OrleansMembershipVersionTable and OrleansMembershipTable, and the nine query
-- texts it looks up by key at start-up. Safe to apply to an empty database or again to an initialised one:
-- tables are created if missing, functions replaced, and query texts upserted.
--
-- Apply it with:  dotnet run --project Silo.Gpu -- apply-schema   (uses Cluster:ConnectionString)
-- or:             psql "$CONNECTION" -f tools/postgres/clustering.sql

CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey varchar(64) NOT NULL,
    QueryText varchar(8000) NOT NULL,
    CONSTRAINT OrleansQuery_Key PRIMARY KEY (QueryKey)
);

-- One row per cluster (DeploymentId = ClusterId): the version that every membership change bumps, optimistically.
CREATE TABLE IF NOT EXISTS OrleansMembershipVersionTable
(
    DeploymentId varchar(150) NOT NULL,
    Timestamp timestamptz(3) NOT NULL DEFAULT now(),
    Version integer NOT NULL DEFAULT 0,
    CONSTRAINT PK_OrleansMembershipVersionTable_DeploymentId PRIMARY KEY (DeploymentId)
);

-- One row per silo incarnation (address, port, generation).
CREATE TABLE IF NOT EXISTS OrleansMembershipTable
(
    DeploymentId varchar(150) NOT NULL,
    Address varchar(45) NOT NULL,
    Port integer NOT NULL,
    Generation integer NOT NULL,
    SiloName varchar(150) NOT NULL,
    HostName varchar(150) NOT NULL,
    Status integer NOT NULL,
    ProxyPort integer NULL,
    SuspectTimes varchar(8000) NULL,
    StartTime timestamptz(3) NOT NULL,
    IAmAliveTime timestamptz(3) NOT NULL,
    CONSTRAINT PK_MembershipTable_DeploymentId PRIMARY KEY (DeploymentId, Address, Port, Generation),
    CONSTRAINT FK_MembershipTable_MembershipVersionTable_DeploymentId
        FOREIGN KEY (DeploymentId) REFERENCES OrleansMembershipVersionTable (DeploymentId)
);

-- Creates the cluster's version row; 1 when created, 0 when it was there.
CREATE OR REPLACE FUNCTION orleansgpu_insert_membership_version(DeploymentIdArg varchar)
RETURNS TABLE(row_count integer) LANGUAGE plpgsql AS $func$
DECLARE
    RowCountVar integer := 0;
BEGIN
    INSERT INTO OrleansMembershipVersionTable (DeploymentId, Timestamp, Version)
    VALUES (DeploymentIdArg, now(), 0)
    ON CONFLICT (DeploymentId) DO NOTHING;
    GET DIAGNOSTICS RowCountVar = ROW_COUNT;
    RETURN QUERY SELECT RowCountVar;
END
$func$;

-- Adds a silo row and bumps the version, both or neither: 1 on success, 0 when the row exists or the version
-- moved on since the caller read it (Orleans then re-reads and retries).
CREATE OR REPLACE FUNCTION orleansgpu_insert_membership(
    DeploymentIdArg varchar, AddressArg varchar, PortArg integer, GenerationArg integer,
    SiloNameArg varchar, HostNameArg varchar, StatusArg integer, ProxyPortArg integer,
    StartTimeArg timestamptz, IAmAliveTimeArg timestamptz, VersionArg integer)
RETURNS TABLE(row_count integer) LANGUAGE plpgsql AS $func$
DECLARE
    RowCountVar integer := 0;
BEGIN
    BEGIN
        INSERT INTO OrleansMembershipTable
            (DeploymentId, Address, Port, Generation, SiloName, HostName, Status, ProxyPort, StartTime, IAmAliveTime)
        VALUES
            (DeploymentIdArg, AddressArg, PortArg, GenerationArg, SiloNameArg, HostNameArg, StatusArg, ProxyPortArg, StartTimeArg, IAmAliveTimeArg)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS RowCountVar = ROW_COUNT;

        IF RowCountVar > 0 THEN
            UPDATE OrleansMembershipVersionTable
            SET Timestamp = now(), Version = Version + 1
            WHERE DeploymentId = DeploymentIdArg AND Version = VersionArg;
            GET DIAGNOSTICS RowCountVar = ROW_COUNT;
        END IF;

        -- Undo the insert when the version did not match.
        ASSERT RowCountVar <> 0, 'no rows affected, rollback';
    EXCEPTION WHEN assert_failure THEN
        RowCountVar := 0;
    END;
    RETURN QUERY SELECT RowCountVar;
END
$func$;

-- Updates a silo's status, suspicions and liveness and bumps the version, both or neither: 1 or 0 as above.
CREATE OR REPLACE FUNCTION orleansgpu_update_membership(
    DeploymentIdArg varchar, AddressArg varchar, PortArg integer, GenerationArg integer,
    StatusArg integer, SuspectTimesArg varchar, IAmAliveTimeArg timestamptz, VersionArg integer)
RETURNS TABLE(row_count integer) LANGUAGE plpgsql AS $func$
DECLARE
    RowCountVar integer := 0;
BEGIN
    BEGIN
        UPDATE OrleansMembershipVersionTable
        SET Timestamp = now(), Version = Version + 1
        WHERE DeploymentId = DeploymentIdArg AND Version = VersionArg;
        GET DIAGNOSTICS RowCountVar = ROW_COUNT;

        IF RowCountVar > 0 THEN
            UPDATE OrleansMembershipTable
            SET Status = StatusArg, SuspectTimes = SuspectTimesArg, IAmAliveTime = IAmAliveTimeArg
            WHERE DeploymentId = DeploymentIdArg AND Address = AddressArg AND Port = PortArg AND Generation = GenerationArg;
            GET DIAGNOSTICS RowCountVar = ROW_COUNT;
        END IF;

        ASSERT RowCountVar <> 0, 'no rows affected, rollback';
    EXCEPTION WHEN assert_failure THEN
        RowCountVar := 0;
    END;
    RETURN QUERY SELECT RowCountVar;
END
$func$;

-- The queries, by the keys Orleans looks up. Parameter names (@DeploymentId, ...) and result column names are
-- part of the contract.
INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('UpdateIAmAlivetimeKey', '
    UPDATE OrleansMembershipTable
    SET IAmAliveTime = @IAmAliveTime
    WHERE DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL
      AND Address = @Address AND @Address IS NOT NULL
      AND Port = @Port AND @Port IS NOT NULL
      AND Generation = @Generation AND @Generation IS NOT NULL;
'),
('InsertMembershipVersionKey', '
    SELECT * FROM orleansgpu_insert_membership_version(@DeploymentId);
'),
('InsertMembershipKey', '
    SELECT * FROM orleansgpu_insert_membership(@DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName,
        @Status, @ProxyPort, @StartTime, @IAmAliveTime, @Version);
'),
('UpdateMembershipKey', '
    SELECT * FROM orleansgpu_update_membership(@DeploymentId, @Address, @Port, @Generation, @Status,
        @SuspectTimes, @IAmAliveTime, @Version);
'),
('GatewaysQueryKey', '
    SELECT Address, ProxyPort, Generation
    FROM OrleansMembershipTable
    WHERE DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL
      AND Status = @Status AND @Status IS NOT NULL
      AND ProxyPort > 0;
'),
('MembershipReadRowKey', '
    SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
           m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
    FROM OrleansMembershipVersionTable v
    LEFT OUTER JOIN OrleansMembershipTable m ON v.DeploymentId = m.DeploymentId
        AND m.Address = @Address AND @Address IS NOT NULL
        AND m.Port = @Port AND @Port IS NOT NULL
        AND m.Generation = @Generation AND @Generation IS NOT NULL
    WHERE v.DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL;
'),
('MembershipReadAllKey', '
    SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
           m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
    FROM OrleansMembershipVersionTable v
    LEFT OUTER JOIN OrleansMembershipTable m ON v.DeploymentId = m.DeploymentId
    WHERE v.DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL;
'),
('DeleteMembershipTableEntriesKey', '
    DELETE FROM OrleansMembershipTable WHERE DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL;
    DELETE FROM OrleansMembershipVersionTable WHERE DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL;
'),
('CleanupDefunctSiloEntriesKey', '
    DELETE FROM OrleansMembershipTable
    WHERE DeploymentId = @DeploymentId AND @DeploymentId IS NOT NULL
      AND IAmAliveTime < @IAmAliveTime
      AND Status != 3;
')
ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText;
