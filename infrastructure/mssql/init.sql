/*
  Demo source for the docker compose stack: the five demo tables of analytics_etl.demo_source
  (inventory, products, orders, transactions, customers) on SQL Server.

  - Change Tracking on the database and on every table, so the ETL's CHANGE_DETECTION=auto picks
    `change_tracking` (inserts, updates and deletes, read with CHANGETABLE(CHANGES ...)).
  - ALLOW_SNAPSHOT_ISOLATION ON: the ETL reads the changes and the current version inside one
    SNAPSHOT transaction.
  - A read-only login `analytics_etl` for the ETL (db_datareader + VIEW CHANGE TRACKING).
  - About ten thousand seeded rows, generated set-based and deterministically.
  - dbo.demo_activity: updates, inserts and deletes a few rows, to watch incremental syncs.

  Idempotent: every object is created only when missing, the seed runs only into empty tables.
  Run by init.sh: sqlcmd -b -I -f 65001 -i init.sql, with MSSQL_ETL_PASSWORD in the environment
  (sqlcmd turns it into the scripting variable used below).
*/
SET NOCOUNT ON;
SET XACT_ABORT ON;
GO

IF DB_ID(N'analytics_demo') IS NULL
    CREATE DATABASE analytics_demo;
GO

IF EXISTS (SELECT 1 FROM sys.databases WHERE name = N'analytics_demo' AND snapshot_isolation_state = 0)
    ALTER DATABASE analytics_demo SET ALLOW_SNAPSHOT_ISOLATION ON;
GO

IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID(N'analytics_demo'))
    ALTER DATABASE analytics_demo SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 3 DAYS, AUTO_CLEANUP = ON);
GO

/* ---- the ETL's login: reads tables and their change tracking, nothing else ---------------- */
USE master;
GO
IF SUSER_ID(N'analytics_etl') IS NULL
    CREATE LOGIN analytics_etl WITH PASSWORD = N'$(MSSQL_ETL_PASSWORD)',
        DEFAULT_DATABASE = analytics_demo, CHECK_POLICY = ON, CHECK_EXPIRATION = OFF;
ELSE
    ALTER LOGIN analytics_etl WITH PASSWORD = N'$(MSSQL_ETL_PASSWORD)';  -- .env stays authoritative
GO

USE analytics_demo;
GO
IF DATABASE_PRINCIPAL_ID(N'analytics_etl') IS NULL
    CREATE USER analytics_etl FOR LOGIN analytics_etl;
GO
ALTER ROLE db_datareader ADD MEMBER analytics_etl;
GRANT VIEW CHANGE TRACKING ON SCHEMA::dbo TO analytics_etl;
GO

/* ---- tables (columns as in analytics_etl.demo_source; DATETIME2(6) keeps microseconds) ---- */
IF OBJECT_ID(N'dbo.products', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.products (
        id INT IDENTITY(1,1) NOT NULL CONSTRAINT pk_products PRIMARY KEY,
        sku NVARCHAR(32) NOT NULL,
        name NVARCHAR(200) NOT NULL,
        category NVARCHAR(50) NULL,
        price DECIMAL(12,2) NOT NULL,
        active BIT NOT NULL,
        description NVARCHAR(500) NULL,
        created_at DATETIME2(6) NOT NULL CONSTRAINT df_products_created_at DEFAULT SYSUTCDATETIME(),
        updated_at DATETIME2(6) NOT NULL CONSTRAINT df_products_updated_at DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX ix_products_updated_at ON dbo.products (updated_at);
END;
GO

IF OBJECT_ID(N'dbo.customers', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.customers (
        id INT IDENTITY(1,1) NOT NULL CONSTRAINT pk_customers PRIMARY KEY,
        email NVARCHAR(200) NOT NULL,
        full_name NVARCHAR(200) NOT NULL,
        country NVARCHAR(2) NULL,
        signup_date DATE NOT NULL,
        loyalty_tier NVARCHAR(20) NULL,
        created_at DATETIME2(6) NOT NULL CONSTRAINT df_customers_created_at DEFAULT SYSUTCDATETIME(),
        updated_at DATETIME2(6) NOT NULL CONSTRAINT df_customers_updated_at DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX ix_customers_updated_at ON dbo.customers (updated_at);
END;
GO

IF OBJECT_ID(N'dbo.inventory', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.inventory (
        id INT IDENTITY(1,1) NOT NULL CONSTRAINT pk_inventory PRIMARY KEY,
        product_id INT NOT NULL,
        warehouse NVARCHAR(50) NOT NULL,
        quantity INT NOT NULL,
        price DECIMAL(12,2) NOT NULL,
        last_counted_at DATETIME2(6) NULL,
        created_at DATETIME2(6) NOT NULL CONSTRAINT df_inventory_created_at DEFAULT SYSUTCDATETIME(),
        updated_at DATETIME2(6) NOT NULL CONSTRAINT df_inventory_updated_at DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX ix_inventory_updated_at ON dbo.inventory (updated_at);
END;
GO

IF OBJECT_ID(N'dbo.orders', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.orders (
        id BIGINT IDENTITY(1,1) NOT NULL CONSTRAINT pk_orders PRIMARY KEY,
        customer_id INT NOT NULL,
        status NVARCHAR(20) NOT NULL,
        total DECIMAL(12,2) NOT NULL,
        currency NVARCHAR(3) NOT NULL,
        ordered_at DATETIME2(6) NOT NULL,
        shipped_at DATETIME2(6) NULL,
        note NVARCHAR(500) NULL,
        created_at DATETIME2(6) NOT NULL CONSTRAINT df_orders_created_at DEFAULT SYSUTCDATETIME(),
        updated_at DATETIME2(6) NOT NULL CONSTRAINT df_orders_updated_at DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX ix_orders_updated_at ON dbo.orders (updated_at);
END;
GO

IF OBJECT_ID(N'dbo.transactions', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.transactions (
        id BIGINT IDENTITY(1,1) NOT NULL CONSTRAINT pk_transactions PRIMARY KEY,
        order_id BIGINT NOT NULL,
        amount DECIMAL(12,2) NOT NULL,
        method NVARCHAR(20) NOT NULL,
        reference NVARCHAR(64) NULL,
        succeeded BIT NOT NULL,
        created_at DATETIME2(6) NOT NULL CONSTRAINT df_transactions_created_at DEFAULT SYSUTCDATETIME(),
        updated_at DATETIME2(6) NOT NULL CONSTRAINT df_transactions_updated_at DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX ix_transactions_updated_at ON dbo.transactions (updated_at);
END;
GO

/* ---- seed: numbers from a cross join, values derived from the row number ------------------
   Two years of history from 2022-01-01; 30 % of the rows were edited up to 30 days later. */
IF NOT EXISTS (SELECT 1 FROM dbo.products)
BEGIN
    ;WITH n AS (  -- (the leading ; keeps the CTE valid whatever precedes it)
        SELECT TOP (200) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS INT) AS i
        FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b
    )
    INSERT INTO dbo.products (sku, name, category, price, active, description, created_at, updated_at)
    SELECT CONCAT(N'SKU-', RIGHT(CONCAT(N'0000000', n.i), 7)),
           CASE WHEN (n.i - 1) / 16 = 0 THEN p.base ELSE CONCAT(p.base, N' #', (n.i - 1) / 16) END,
           CASE WHEN n.i % 20 = 0 THEN NULL
                ELSE CHOOSE(n.i % 6 + 1, N'beverages', N'food', N'kitchen', N'office', N'electronics',
                            N'furniture') END,
           CAST(1 + (n.i * 7919 % 49900) / 100.0 AS DECIMAL(12,2)),
           CASE WHEN n.i % 10 = 0 THEN 0 ELSE 1 END,
           CASE WHEN n.i % 3 = 0 THEN NULL ELSE CONCAT(p.base, N' — item ', n.i) END,
           t.created_at,
           CASE WHEN n.i % 10 < 7 THEN t.created_at ELSE DATEADD(MINUTE, n.i * 37 % 43200, t.created_at) END
    FROM n
    CROSS APPLY (SELECT CHOOSE((n.i - 1) % 16 + 1, N'Café crème', N'東京 tea', N'Crème brûlée mix',
                               N'Jalapeño salsa', N'Smørrebrød kit', N'Straße map', N'Chai latte',
                               N'Espresso beans', N'Green tea', N'Olive oil', N'Dark chocolate',
                               N'Ceramic mug', N'Notebook A5', N'Desk lamp', N'Wireless mouse',
                               N'Ergonomic chair') AS base) AS p
    CROSS APPLY (SELECT DATEADD(SECOND, n.i * 315360, CAST('2022-01-01' AS DATETIME2(6))) AS created_at) AS t
    ORDER BY n.i;
END;
GO

IF NOT EXISTS (SELECT 1 FROM dbo.customers)
BEGIN
    ;WITH n AS (
        SELECT TOP (1000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS INT) AS i
        FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b
    )
    INSERT INTO dbo.customers (email, full_name, country, signup_date, loyalty_tier, created_at, updated_at)
    SELECT CONCAT(N'customer', n.i, N'@example.com'),
           CONCAT(CHOOSE(n.i % 12 + 1, N'José', N'Zoë', N'Ana', N'Björn', N'Chloé', N'David', N'Emma',
                         N'Łukasz', N'Mia', N'Noah', N'芳', N'Søren'),
                  N' ',
                  CHOOSE(n.i / 12 % 10 + 1, N'Álvarez', N'Müller', N'Smith', N'Nguyễn', N'O''Brien',
                         N'Dubois', N'王', N'Kowalski', N'Rossi', N'Ødegaard')),
           CASE WHEN n.i % 20 = 0 THEN NULL
                ELSE CHOOSE(n.i % 10 + 1, N'US', N'DE', N'FR', N'GB', N'JP', N'BR', N'IN', N'PL', N'NO',
                            N'ES') END,
           CAST(t.created_at AS DATE),
           CASE WHEN n.i % 5 < 2 THEN NULL
                ELSE CHOOSE(n.i % 4 + 1, N'bronze', N'silver', N'gold', N'platinum') END,
           t.created_at,
           CASE WHEN n.i % 10 < 7 THEN t.created_at ELSE DATEADD(MINUTE, n.i * 37 % 43200, t.created_at) END
    FROM n
    CROSS APPLY (SELECT DATEADD(SECOND, n.i * 63072, CAST('2022-01-01' AS DATETIME2(6))) AS created_at) AS t
    ORDER BY n.i;
END;
GO

IF NOT EXISTS (SELECT 1 FROM dbo.inventory)
BEGIN
    ;WITH n AS (
        SELECT TOP (800) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS INT) AS i
        FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b
    )
    INSERT INTO dbo.inventory (product_id, warehouse, quantity, price, last_counted_at, created_at, updated_at)
    SELECT n.i * 7 % 200 + 1,
           CHOOSE(n.i % 6 + 1, N'north-1', N'north-2', N'south-1', N'east-1', N'west-1', N'central'),
           n.i * 37 % 1000,
           CAST(1 + (n.i * 104729 % 49900) / 100.0 AS DECIMAL(12,2)),
           CASE WHEN n.i % 5 = 0 THEN NULL ELSE u.updated_at END,
           t.created_at,
           u.updated_at
    FROM n
    CROSS APPLY (SELECT DATEADD(SECOND, n.i * 78840, CAST('2022-01-01' AS DATETIME2(6))) AS created_at) AS t
    CROSS APPLY (SELECT CASE WHEN n.i % 10 < 7 THEN t.created_at
                             ELSE DATEADD(MINUTE, n.i * 37 % 43200, t.created_at) END AS updated_at) AS u
    ORDER BY n.i;
END;
GO

IF NOT EXISTS (SELECT 1 FROM dbo.orders)
BEGIN
    ;WITH n AS (
        SELECT TOP (4000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS INT) AS i
        FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b
    )
    INSERT INTO dbo.orders (customer_id, status, total, currency, ordered_at, shipped_at, note, created_at, updated_at)
    SELECT n.i * 13 % 1000 + 1,
           s.status,
           CAST(5 + (n.i * 7919 % 99500) / 100.0 AS DECIMAL(12,2)),
           CHOOSE(n.i % 4 + 1, N'USD', N'EUR', N'GBP', N'JPY'),
           t.created_at,
           CASE WHEN s.status IN (N'shipped', N'delivered') THEN u.updated_at END,
           CASE WHEN n.i % 10 = 0
                THEN CHOOSE(n.i / 10 % 5 + 1, N'Leave at door', N'Gift — please wrap', N'Livraison après 18h',
                            N'配達時間指定', N'Call on arrival') END,
           t.created_at,
           u.updated_at
    FROM n
    CROSS APPLY (SELECT CHOOSE(n.i % 6 + 1, N'pending', N'paid', N'shipped', N'delivered', N'cancelled',
                               N'refunded') AS status) AS s
    CROSS APPLY (SELECT DATEADD(SECOND, n.i * 15768, CAST('2022-01-01' AS DATETIME2(6))) AS created_at) AS t
    CROSS APPLY (SELECT CASE WHEN n.i % 10 < 7 THEN t.created_at
                             ELSE DATEADD(MINUTE, n.i * 37 % 43200, t.created_at) END AS updated_at) AS u
    ORDER BY n.i;
END;
GO

IF NOT EXISTS (SELECT 1 FROM dbo.transactions)
BEGIN
    ;WITH n AS (
        SELECT TOP (4000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS INT) AS i
        FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b
    )
    INSERT INTO dbo.transactions (order_id, amount, method, reference, succeeded, created_at, updated_at)
    SELECT n.i * 17 % 4000 + 1,
           CAST(1 + (n.i * 104729 % 99900) / 100.0 AS DECIMAL(12,2)),
           CHOOSE(n.i % 5 + 1, N'card', N'paypal', N'bank_transfer', N'gift_card', N'cash'),
           CASE WHEN n.i % 7 = 0 THEN NULL ELSE CONCAT(N'TX', RIGHT(CONCAT(N'0000000000', n.i), 10)) END,
           CASE WHEN n.i % 33 = 0 THEN 0 ELSE 1 END,
           t.created_at,
           CASE WHEN n.i % 10 < 7 THEN t.created_at ELSE DATEADD(MINUTE, n.i * 37 % 43200, t.created_at) END
    FROM n
    CROSS APPLY (SELECT DATEADD(SECOND, n.i * 15768, CAST('2022-01-01' AS DATETIME2(6))) AS created_at) AS t
    ORDER BY n.i;
END;
GO

/* ---- change tracking on every table (after the seed: the first sync loads it whole anyway) -- */
IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'dbo.products'))
    ALTER TABLE dbo.products ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF);
IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'dbo.customers'))
    ALTER TABLE dbo.customers ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF);
IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'dbo.inventory'))
    ALTER TABLE dbo.inventory ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF);
IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'dbo.orders'))
    ALTER TABLE dbo.orders ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF);
IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'dbo.transactions'))
    ALTER TABLE dbo.transactions ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF);
GO

/* ---- demo activity: EXEC dbo.demo_activity @rows = 50; -------------------------------------
   Updates @rows orders and inventory rows, inserts @rows / 5 orders (with a payment each) and
   deletes @rows / 10 transactions, stamping updated_at, as an application between two syncs. */
CREATE OR ALTER PROCEDURE dbo.demo_activity
    @rows INT = 50
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @now DATETIME2(6) = SYSUTCDATETIME();
    DECLARE @new INT = CASE WHEN @rows / 5 < 1 THEN 1 ELSE @rows / 5 END;
    DECLARE @gone INT = CASE WHEN @rows / 10 < 1 THEN 1 ELSE @rows / 10 END;

    BEGIN TRANSACTION;

    WITH picked AS (SELECT TOP (@rows) status, updated_at FROM dbo.orders ORDER BY NEWID())
    UPDATE picked
    SET status = CHOOSE(ABS(CHECKSUM(NEWID())) % 6 + 1, N'pending', N'paid', N'shipped', N'delivered',
                        N'cancelled', N'refunded'),
        updated_at = @now;

    WITH picked AS (SELECT TOP (@rows) quantity, last_counted_at, updated_at FROM dbo.inventory ORDER BY NEWID())
    UPDATE picked
    SET quantity = ABS(CHECKSUM(NEWID())) % 1000, last_counted_at = @now, updated_at = @now;

    DECLARE @inserted TABLE (id BIGINT NOT NULL, total DECIMAL(12,2) NOT NULL);
    INSERT INTO dbo.orders (customer_id, status, total, currency, ordered_at, created_at, updated_at)
    OUTPUT inserted.id, inserted.total INTO @inserted (id, total)
    SELECT TOP (@new) c.id, N'pending', CAST(5 + ABS(CHECKSUM(NEWID())) % 99500 / 100.0 AS DECIMAL(12,2)),
           N'EUR', @now, @now, @now
    FROM dbo.customers AS c
    ORDER BY NEWID();

    INSERT INTO dbo.transactions (order_id, amount, method, reference, succeeded, created_at, updated_at)
    SELECT id, total, N'card', CONCAT(N'TX-DEMO-', id), 1, @now, @now
    FROM @inserted;

    WITH picked AS (SELECT TOP (@gone) id FROM dbo.transactions ORDER BY NEWID())
    DELETE FROM picked;

    COMMIT TRANSACTION;
END;
GO

PRINT 'analytics_demo: tables, seed, change tracking and dbo.demo_activity are in place';
GO
