//! The seed's sequence, in order, in one run: items, orders → invoices,
//! returns → credit notes, purchase orders, payments on unpaid invoices,
//! refunds on unpaid credit notes.
//!
//! Each document Xero creates is remembered in the installation's storage
//! (`invoice/{order}`, `credit-note/{return}`…) and checkpointed at once,
//! before the record is acknowledged; acknowledgements commit with the run.
//! So a run killed or failed after Xero answered finds the document in
//! storage next time and only acknowledges; a run killed before the answer
//! was stored sends the same `Idempotency-Key` again, which Xero answers
//! from its cache: nothing is posted twice.

use std::collections::HashMap;

use airlock_sdk::records::{self, Feed, Record};
use airlock_sdk::{Failure, info, storage, warn};
use serde_json::{Value, json};

use crate::Settings;
use crate::client::{Written, Xero};
use crate::mapping::{self, text};

/// Records asked for per page.
const PAGE: u32 = 100;

/// What a run did, for its message.
#[derive(Debug, Default)]
pub struct Tally {
    /// Invoices, credit notes, purchase orders and payments created, and
    /// invoices authorised.
    pub posted: u32,
    /// Records acknowledged.
    pub acknowledged: u32,
    /// Documents Xero refused as invalid (each logged).
    pub refused: Vec<String>,
    /// Writes not sent because the run is in test mode.
    pub suppressed: u32,
}

/// One run of the `sync` feed.
pub struct Sync<'a> {
    /// The connection.
    pub xero: Xero,
    /// The installation's settings.
    pub settings: &'a Settings,
    /// What happened.
    pub tally: Tally,
    items: HashMap<String, String>,
}

impl<'a> Sync<'a> {
    /// A sync over `xero`.
    pub fn new(xero: Xero, settings: &'a Settings) -> Self {
        Self {
            xero,
            settings,
            tally: Tally::default(),
            items: HashMap::new(),
        }
    }

    /// Runs every step in the seed's order.
    pub fn run(&mut self) -> Result<(), Failure> {
        self.load_items()?;
        records::walk("orders", Feed::Pending, PAGE, |r| self.order(r))?;
        records::walk("returns", Feed::Pending, PAGE, |r| self.ret(r))?;
        records::walk("purchase-orders", Feed::Pending, PAGE, |r| {
            self.purchase_order(r)
        })?;
        let mut unpaid = self.unpaid("Invoices", "InvoiceID", "AmountDue", UNPAID_INVOICES)?;
        records::walk("payments", Feed::Pending, PAGE, |r| {
            self.payment(r, &mut unpaid)
        })?;
        let mut open = self.unpaid(
            "CreditNotes",
            "CreditNoteID",
            "RemainingCredit",
            UNPAID_CREDIT_NOTES,
        )?;
        records::walk("refunds", Feed::Pending, PAGE, |r| {
            self.refund(r, &mut open)
        })?;
        Ok(())
    }

    /// getItems: every item's code, id and cost price (Xero's `/Items` has
    /// no paging). The cost prices are kept in storage for the shop.
    fn load_items(&mut self) -> Result<(), Failure> {
        let body = self.xero.get("/Items")?;
        let mut costs = serde_json::Map::new();
        for item in body["Items"].as_array().into_iter().flatten() {
            let (Some(code), Some(id)) = (item["Code"].as_str(), item["ItemID"].as_str()) else {
                continue;
            };
            self.items.insert(code.to_string(), id.to_string());
            if let Some(cost) = item["PurchaseDetails"]["UnitPrice"].as_f64() {
                costs.insert(code.to_string(), json!(cost));
            }
        }
        info(&format!(
            "{} items in Xero ({} with a cost price)",
            self.items.len(),
            costs.len()
        ));
        remember("items/cost-prices", &Value::Object(costs))
    }

    fn order(&mut self, order: Record) -> Result<(), Failure> {
        if order.is_deleted() || !mapping::order_exportable(&order.body) {
            return Ok(());
        }
        let settings = self.settings;
        if let Some(mut known) = recall(&format!("invoice/{}", order.id))? {
            // Exported before and changed since: authorise the draft once
            // every line not cancelled is completed.
            if known["status"] == "DRAFT"
                && settings.authorise_when_completed
                && mapping::order_completed(&order.body)
            {
                let id = text(&known, "id").to_string();
                let body = json!({ "Invoices": [{ "InvoiceID": id, "Status": "AUTHORISED" }] });
                let key = self.key("authorise", &order);
                match self
                    .xero
                    .write("POST", &format!("/Invoices/{id}"), &body, &key)?
                {
                    Written::Done(_) => {
                        known["status"] = json!("AUTHORISED");
                        remember(&format!("invoice/{}", order.id), &known)?;
                        self.tally.posted += 1;
                    }
                    Written::Refused(why) => return self.refused("order", &order, why),
                    Written::Suppressed => {
                        self.tally.suppressed += 1;
                        return Ok(());
                    }
                }
            }
            return self.done(&order, text(&known, "id"));
        }
        let Some(contact) = self.contact(&order.body["customer"], "customer", &order)? else {
            return Ok(());
        };
        self.ensure_items(&order.body, false)?;
        let status = if settings.invoice_status_authorised
            || (settings.authorise_when_completed && mapping::order_completed(&order.body))
        {
            "AUTHORISED"
        } else {
            "DRAFT"
        };
        let invoice = mapping::invoice(&order.body, &contact, status, &settings.accounts);
        let key = self.key("invoice", &order);
        match self
            .xero
            .write("PUT", "/Invoices", &json!({ "Invoices": [invoice] }), &key)?
        {
            Written::Done(body) => {
                let created = &body["Invoices"][0];
                let id = text(created, "InvoiceID").to_string();
                let status = text(created, "Status").to_string();
                remember(
                    &format!("invoice/{}", order.id),
                    &json!({ "id": id, "status": status }),
                )?;
                self.tally.posted += 1;
                self.done(&order, &id)
            }
            Written::Refused(why) => self.refused("order", &order, why),
            Written::Suppressed => {
                self.tally.suppressed += 1;
                Ok(())
            }
        }
    }

    fn ret(&mut self, ret: Record) -> Result<(), Failure> {
        if ret.is_deleted() || !mapping::RETURN_STATUSES_EXPORTED.contains(&ret.str("status")) {
            return Ok(());
        }
        if let Some(known) = recall(&format!("credit-note/{}", ret.id))? {
            return self.done(&ret, text(&known, "id"));
        }
        let order = records::get("orders", ret.str("order_id"))?;
        let Some(contact) = self.contact(&ret.body["customer"], "customer", &ret)? else {
            return Ok(());
        };
        self.ensure_items(&ret.body, false)?;
        let note = mapping::credit_note(
            &ret.body,
            order.as_ref().map(|o| &o.body),
            &contact,
            &self.settings.credit_note_status,
            &self.settings.accounts,
        );
        let key = self.key("credit-note", &ret);
        match self.xero.write(
            "PUT",
            "/CreditNotes",
            &json!({ "CreditNotes": [note] }),
            &key,
        )? {
            Written::Done(body) => {
                let id = text(&body["CreditNotes"][0], "CreditNoteID").to_string();
                let known = json!({ "id": id, "order": ret.str("order_id") });
                remember(&format!("credit-note/{}", ret.id), &known)?;
                remember(
                    &format!("credit-note-by-order/{}", ret.str("order_id")),
                    &known,
                )?;
                self.tally.posted += 1;
                self.done(&ret, &id)
            }
            Written::Refused(why) => self.refused("return", &ret, why),
            Written::Suppressed => {
                self.tally.suppressed += 1;
                Ok(())
            }
        }
    }

    fn purchase_order(&mut self, po: Record) -> Result<(), Failure> {
        if po.is_deleted() || !mapping::PURCHASE_ORDER_STATUSES_EXPORTED.contains(&po.str("status"))
        {
            return Ok(());
        }
        if let Some(known) = recall(&format!("purchase-order/{}", po.id))? {
            return self.done(&po, text(&known, "id"));
        }
        let Some(contact) = self.contact(&po.body["supplier"], "supplier", &po)? else {
            return Ok(());
        };
        self.ensure_items(&po.body, true)?;
        let doc = mapping::purchase_order(&po.body, &contact);
        let key = self.key("purchase-order", &po);
        match self.xero.write(
            "PUT",
            "/PurchaseOrders",
            &json!({ "PurchaseOrders": [doc] }),
            &key,
        )? {
            Written::Done(body) => {
                let id = text(&body["PurchaseOrders"][0], "PurchaseOrderID").to_string();
                remember(&format!("purchase-order/{}", po.id), &json!({ "id": id }))?;
                self.tally.posted += 1;
                self.done(&po, &id)
            }
            Written::Refused(why) => self.refused("purchase order", &po, why),
            Written::Suppressed => {
                self.tally.suppressed += 1;
                Ok(())
            }
        }
    }

    /// Documents still owed money: id → amount outstanding.
    fn unpaid(
        &mut self,
        collection: &str,
        id_field: &str,
        due_field: &str,
        query: &str,
    ) -> Result<HashMap<String, f64>, Failure> {
        let mut open = HashMap::new();
        for page in 1.. {
            let body = self
                .xero
                .get(&format!("/{collection}?{query}&page={page}"))?;
            let docs = body[collection].as_array().cloned().unwrap_or_default();
            for doc in &docs {
                if let (Some(id), Some(due)) = (doc[id_field].as_str(), doc[due_field].as_f64()) {
                    open.insert(id.to_string(), due);
                }
            }
            if docs.len() < 100 {
                break;
            }
        }
        Ok(open)
    }

    fn payment(
        &mut self,
        payment: Record,
        unpaid: &mut HashMap<String, f64>,
    ) -> Result<(), Failure> {
        if payment.is_deleted() {
            return Ok(());
        }
        match payment.str("status") {
            "failed" => return self.done(&payment, ""),
            "pending" => return Ok(()),
            _ => {}
        }
        if let Some(known) = recall(&format!("payment/{}", payment.id))? {
            return self.done(&payment, text(&known, "id"));
        }
        // The order's invoice, if it was exported.
        let Some(invoice) = recall(&format!("invoice/{}", payment.str("order_id")))? else {
            return Ok(());
        };
        let invoice_id = text(&invoice, "id").to_string();
        let Some(due) = unpaid.get(&invoice_id).copied() else {
            if invoice["status"] == "DRAFT" {
                // Xero takes payments on authorised invoices only: wait.
                return Ok(());
            }
            info(&format!(
                "payment {}: invoice of order {} is already paid",
                payment.id,
                payment.str("order_id")
            ));
            return self.done(&payment, "");
        };
        let target = json!({ "Invoice": { "InvoiceID": invoice_id } });
        self.pay(payment, target, due, unpaid, &invoice_id, "payment")
    }

    fn refund(&mut self, refund: Record, open: &mut HashMap<String, f64>) -> Result<(), Failure> {
        if refund.is_deleted() {
            return Ok(());
        }
        match refund.str("status") {
            "failed" => return self.done(&refund, ""),
            "pending" => return Ok(()),
            _ => {}
        }
        if let Some(known) = recall(&format!("refund/{}", refund.id))? {
            return self.done(&refund, text(&known, "id"));
        }
        let note = match refund.str("return_id") {
            "" => recall(&format!("credit-note-by-order/{}", refund.str("order_id")))?,
            id => recall(&format!("credit-note/{id}"))?,
        };
        let Some(note) = note else {
            return Ok(());
        };
        let note_id = text(&note, "id").to_string();
        let Some(due) = open.get(&note_id).copied() else {
            // Not authorised yet (drafts take no payments), or settled.
            return Ok(());
        };
        let target = json!({ "CreditNote": { "CreditNoteID": note_id } });
        self.pay(refund, target, due, open, &note_id, "refund")
    }

    fn pay(
        &mut self,
        record: Record,
        target: Value,
        due: f64,
        open: &mut HashMap<String, f64>,
        document: &str,
        kind: &str,
    ) -> Result<(), Failure> {
        let amount = mapping::amount(&record.body, "amount").min(due);
        if amount <= 0.0 {
            return self.done(&record, "");
        }
        let when = mapping::date(
            &record.body,
            if kind == "payment" {
                "paid_at"
            } else {
                "refunded_at"
            },
        )
        .unwrap_or_default();
        let reference = match record.str("reference") {
            "" => record.id.clone(),
            r => r.to_string(),
        };
        let doc = mapping::payment(
            target,
            &self.settings.payment_account_code,
            &when,
            amount,
            &reference,
        );
        let key = self.key(kind, &record);
        match self
            .xero
            .write("PUT", "/Payments", &json!({ "Payments": [doc] }), &key)?
        {
            Written::Done(body) => {
                let id = text(&body["Payments"][0], "PaymentID").to_string();
                remember(&format!("{kind}/{}", record.id), &json!({ "id": id }))?;
                open.insert(document.to_string(), mapping::round2(due - amount));
                self.tally.posted += 1;
                self.done(&record, &id)
            }
            Written::Refused(why) => self.refused(kind, &record, why),
            Written::Suppressed => {
                self.tally.suppressed += 1;
                Ok(())
            }
        }
    }

    /// The contact for a party: remembered, found by email (then name), or
    /// created. None if the write was suppressed (test mode) or refused.
    fn contact(
        &mut self,
        party: &Value,
        role: &str,
        record: &Record,
    ) -> Result<Option<String>, Failure> {
        let email = text(party, "email").trim().to_ascii_lowercase();
        let name = text(party, "name").trim().to_string();
        let memo = match (email.is_empty(), text(party, "id")) {
            (false, _) => format!("contact/email/{email}"),
            (true, "") => format!("contact/name/{}", name.to_lowercase()),
            (true, id) => format!("contact/{role}/{id}"),
        };
        if let Some(known) = recall(&memo)? {
            return Ok(Some(text(&known, "id").to_string()));
        }
        let found = if email.is_empty() {
            self.find_contact(&name, |c| c["Name"].as_str() == Some(name.as_str()))?
        } else {
            self.find_contact(&email, |c| {
                c["EmailAddress"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&email))
            })?
        };
        let id = match found {
            Some(id) => id,
            None => {
                let key =
                    mapping::idempotency_key(&self.settings.installation, "contact", &memo, 0);
                let body = json!({ "Contacts": [mapping::contact(party)] });
                match self.xero.write("PUT", "/Contacts", &body, &key)? {
                    Written::Done(b) => text(&b["Contacts"][0], "ContactID").to_string(),
                    Written::Refused(why) if why.contains("already") => {
                        // The name is taken by a contact with another
                        // email: Xero's names are unique, so use it.
                        match self
                            .find_contact(&name, |c| c["Name"].as_str() == Some(name.as_str()))?
                        {
                            Some(id) => id,
                            None => {
                                self.refused(role, record, why)?;
                                return Ok(None);
                            }
                        }
                    }
                    Written::Refused(why) => {
                        self.refused(role, record, why)?;
                        return Ok(None);
                    }
                    Written::Suppressed => {
                        self.tally.suppressed += 1;
                        return Ok(None);
                    }
                }
            }
        };
        remember(&memo, &json!({ "id": id }))?;
        Ok(Some(id))
    }

    fn find_contact(
        &mut self,
        term: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Option<String>, Failure> {
        if term.is_empty() {
            return Ok(None);
        }
        let body = self.xero.get(&format!(
            "/Contacts?searchTerm={}&summaryOnly=true",
            airlock_sdk::http::query_escape(term)
        ))?;
        Ok(body["Contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| matches(c))
            .and_then(|c| c["ContactID"].as_str())
            .map(str::to_string))
    }

    /// Creates the items a document's lines name that Xero does not have.
    fn ensure_items(&mut self, body: &Value, purchased: bool) -> Result<(), Failure> {
        let lines = body["lines"].as_array().into_iter().flatten();
        for line in lines.filter(|l| l["cancelled"] != true) {
            let Some(code) = mapping::item_code(text(line, "sku")) else {
                continue;
            };
            if self.items.contains_key(code) {
                continue;
            }
            let item = if purchased {
                mapping::purchase_item(code, line)
            } else {
                mapping::sales_item(code, line, &self.settings.accounts.sales)
            };
            let key = mapping::idempotency_key(&self.settings.installation, "item", code, 0);
            match self
                .xero
                .write("PUT", "/Items", &json!({ "Items": [item] }), &key)?
            {
                Written::Done(b) => {
                    let id = text(&b["Items"][0], "ItemID").to_string();
                    self.items.insert(code.to_string(), id);
                }
                Written::Refused(why) => {
                    warn(&format!("item {code} not created: {why}"));
                }
                Written::Suppressed => self.tally.suppressed += 1,
            }
        }
        Ok(())
    }

    fn key(&self, kind: &str, record: &Record) -> String {
        mapping::idempotency_key(
            &self.settings.installation,
            kind,
            &record.id,
            record.version,
        )
    }

    /// Acknowledges the record, noting Xero's id as its external reference.
    fn done(&mut self, record: &Record, xero_id: &str) -> Result<(), Failure> {
        if !xero_id.is_empty() {
            record.set_external_ref(xero_id)?;
        }
        record.acknowledge()?;
        self.tally.acknowledged += 1;
        Ok(())
    }

    fn refused(&mut self, what: &str, record: &Record, why: String) -> Result<(), Failure> {
        let line = format!("{what} {}: Xero refused it: {why}", record.id);
        airlock_sdk::log::write(airlock_sdk::log::Level::Error, &line);
        self.tally.refused.push(line);
        Ok(())
    }
}

/// Unpaid sales invoices (the spec recommends `Statuses` over a where
/// clause for status).
const UNPAID_INVOICES: &str =
    "Statuses=AUTHORISED&where=Type%3D%3D%22ACCREC%22%20AND%20AmountDue%3E0";
/// Unpaid sales credit notes.
const UNPAID_CREDIT_NOTES: &str = "where=Type%3D%3D%22ACCRECCREDIT%22%20AND%20Status%3D%3D%22AUTHORISED%22%20AND%20RemainingCredit%3E0";

/// A remembered JSON value from the installation's storage.
fn recall(key: &str) -> Result<Option<Value>, Failure> {
    let value = storage::get(key).map_err(airlock_sdk::storage_failure)?;
    Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Remembers `value` and checkpoints, so it survives this run failing.
fn remember(key: &str, value: &Value) -> Result<(), Failure> {
    let bytes = serde_json::to_vec(value).map_err(|e| Failure::error(e.to_string()))?;
    storage::set(key, &bytes).map_err(airlock_sdk::storage_failure)?;
    storage::checkpoint().map_err(airlock_sdk::storage_failure)
}
